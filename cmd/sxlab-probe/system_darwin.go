//go:build darwin

package main

// The calls below follow Apple's C headers: <servers/bootstrap.h>,
// <mach/task.h>, <xpc/connection.h>, <xpc/dictionary.h> and
// <xpc/xpc.h>; libxpc and the Mach calls all live in libSystem. They are
// made through purego (no cgo), so CGO_ENABLED=0 cross-builds from Linux
// work. Unverified on macOS: no Mac has run this file yet.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"

	"github.com/sxlab/sxlab/cmd/sxlab-probe/schema"
)

const (
	libSystem = "/usr/lib/libSystem.B.dylib"
	// TASK_BOOTSTRAP_PORT, <mach/task_special_ports.h>.
	taskBootstrapPort = 4
	// XPC_CONNECTION_MACH_SERVICE_PRIVILEGED, <xpc/connection.h>: look
	// the name up in the system (LaunchDaemon) bootstrap.
	xpcMachServicePrivileged = 1 << 1
)

// darwinSystem holds the libSystem functions and the addresses of the
// XPC constants (XPC_ERROR_CONNECTION_INVALID and friends are addresses
// of global objects, compared by identity).
type darwinSystem struct {
	taskGetSpecialPort func(task uint32, which int32, port *uint32) int32
	bootstrapLookUp    func(bp uint32, name string, sp *uint32) int32
	bootstrapStrerror  func(code int32) string
	machPortDeallocate func(task, name uint32) int32
	task               uint32 // mach_task_self()

	createMachService func(name *byte, queue uintptr, flags uint64) uintptr
	setEventHandler   func(conn uintptr, handler objc.Block)
	resume            func(conn uintptr)
	cancel            func(conn uintptr)
	dictCreate        func(keys, values uintptr, count uintptr) uintptr
	dictSetString     func(dict uintptr, key, value string)
	dictGetString     func(dict uintptr, key uintptr) string
	sendSync          func(conn, msg uintptr) uintptr
	getType           func(obj uintptr) uintptr
	copyDescription   func(obj uintptr) *byte
	release           func(obj uintptr)
	free              func(p *byte)
	// memcpy reads the C globals: it takes their addresses as integers,
	// which keeps uintptr-to-pointer conversions out of Go code.
	memcpy func(dst unsafe.Pointer, src uintptr, n uintptr) uintptr

	errInvalid, errInterrupted, errTermination uintptr
	typeError, typeDictionary                  uintptr
	keyDescription                             uintptr // a const char *
}

// openSystem loads libSystem and resolves every symbol up front, so a
// missing one is a clear probe error rather than a crash mid-probe.
func openSystem() (sys system, err error) {
	defer func() {
		// purego.RegisterLibFunc panics on a missing symbol.
		if r := recover(); r != nil {
			sys, err = nil, fmt.Errorf("loading %s: %v", libSystem, r)
		}
	}()
	h, err := purego.Dlopen(libSystem, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", libSystem, err)
	}
	d := &darwinSystem{}
	purego.RegisterLibFunc(&d.taskGetSpecialPort, h, "task_get_special_port")
	purego.RegisterLibFunc(&d.bootstrapLookUp, h, "bootstrap_look_up")
	// bootstrap_strerror only adds the Mac's own words: without it the
	// report still names the code.
	if sym, err := purego.Dlsym(h, "bootstrap_strerror"); err == nil {
		purego.RegisterFunc(&d.bootstrapStrerror, sym)
	}
	purego.RegisterLibFunc(&d.machPortDeallocate, h, "mach_port_deallocate")
	purego.RegisterLibFunc(&d.createMachService, h, "xpc_connection_create_mach_service")
	purego.RegisterLibFunc(&d.setEventHandler, h, "xpc_connection_set_event_handler")
	purego.RegisterLibFunc(&d.resume, h, "xpc_connection_resume")
	purego.RegisterLibFunc(&d.cancel, h, "xpc_connection_cancel")
	purego.RegisterLibFunc(&d.dictCreate, h, "xpc_dictionary_create")
	purego.RegisterLibFunc(&d.dictSetString, h, "xpc_dictionary_set_string")
	purego.RegisterLibFunc(&d.dictGetString, h, "xpc_dictionary_get_string")
	purego.RegisterLibFunc(&d.sendSync, h, "xpc_connection_send_message_with_reply_sync")
	purego.RegisterLibFunc(&d.getType, h, "xpc_get_type")
	purego.RegisterLibFunc(&d.copyDescription, h, "xpc_copy_description")
	purego.RegisterLibFunc(&d.release, h, "xpc_release")
	purego.RegisterLibFunc(&d.free, h, "free")
	purego.RegisterLibFunc(&d.memcpy, h, "memcpy")

	// mach_task_self() is a macro reading the global mach_task_self_.
	taskVar, err := purego.Dlsym(h, "mach_task_self_")
	if err != nil {
		return nil, fmt.Errorf("mach_task_self_: %w", err)
	}
	d.memcpy(unsafe.Pointer(&d.task), taskVar, unsafe.Sizeof(d.task))
	for _, g := range []struct {
		name string
		addr *uintptr
	}{
		{"_xpc_error_connection_invalid", &d.errInvalid},
		{"_xpc_error_connection_interrupted", &d.errInterrupted},
		{"_xpc_error_termination_imminent", &d.errTermination},
		{"_xpc_type_error", &d.typeError},
		{"_xpc_type_dictionary", &d.typeDictionary},
	} {
		if *g.addr, err = purego.Dlsym(h, g.name); err != nil {
			return nil, fmt.Errorf("%s: %w", g.name, err)
		}
	}
	// XPC_ERROR_KEY_DESCRIPTION is a `const char *const` global.
	keyVar, err := purego.Dlsym(h, "_xpc_error_key_description")
	if err != nil {
		return nil, fmt.Errorf("_xpc_error_key_description: %w", err)
	}
	d.memcpy(unsafe.Pointer(&d.keyDescription), keyVar, unsafe.Sizeof(d.keyDescription))
	return d, nil
}

func (d *darwinSystem) UID() int { return os.Getuid() }

func (d *darwinSystem) Lookup(service string) (int32, string, error) {
	var bp uint32
	if kr := d.taskGetSpecialPort(d.task, taskBootstrapPort, &bp); kr != 0 {
		return 0, "", fmt.Errorf("task_get_special_port(TASK_BOOTSTRAP_PORT) returned %d", kr)
	}
	if bp == 0 {
		return 0, "", errors.New("this process has no bootstrap port (MACH_PORT_NULL)")
	}
	defer d.machPortDeallocate(d.task, bp)
	var port uint32
	code := d.bootstrapLookUp(bp, service, &port)
	if code == 0 && port != 0 {
		// The probe only needed to know that a send right exists.
		d.machPortDeallocate(d.task, port)
	}
	text := ""
	if d.bootstrapStrerror != nil {
		text = d.bootstrapStrerror(code)
	}
	return code, text, nil
}

func (d *darwinSystem) Send(ctx context.Context, service string, privileged bool) (schema.Event, string, error) {
	// libxpc may keep the name: it lives in Go memory until the
	// connection is gone (KeepAlive below).
	name := append([]byte(service), 0)
	var flags uint64
	if privileged {
		flags = xpcMachServicePrivileged
	}
	conn := d.createMachService(&name[0], 0, flags)
	if conn == 0 {
		return "", "", errors.New("xpc_connection_create_mach_service returned NULL")
	}
	// A connection must have an event handler before it is resumed. The
	// reply (or error) of the one message comes back from sendSync, so
	// the handler only has to exist; it runs on a libxpc queue.
	handler := objc.NewBlock(func(_ objc.Block, _ objc.ID) {})
	defer handler.Release() // libxpc keeps its own copy
	d.setEventHandler(conn, handler)
	d.resume(conn)

	msg := d.dictCreate(0, 0, 0)
	d.dictSetString(msg, "sxlab-probe", "ping")

	type answer struct {
		ev   schema.Event
		desc string
	}
	done := make(chan answer, 1)
	go func() {
		reply := d.sendSync(conn, msg)
		ev, desc := d.classify(reply)
		d.release(reply)
		done <- answer{ev, desc}
	}()
	var a answer
	select {
	case a = <-done:
		d.cancel(conn)
	case <-ctx.Done():
		// Cancelling should make the blocked send return
		// XPC_ERROR_CONNECTION_INVALID; that answer is ours, not the
		// service's, so it is dropped. If it does not come, the objects
		// stay with the blocked call: the process is about to exit.
		d.cancel(conn)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			runtime.KeepAlive(name)
			return schema.EventTimeout, "the blocked send did not return after xpc_connection_cancel", nil
		}
		a = answer{schema.EventTimeout, ""}
	}
	d.release(msg)
	d.release(conn)
	runtime.KeepAlive(name)
	return a.ev, a.desc, nil
}

// classify maps what sendSync returned onto an event.
func (d *darwinSystem) classify(reply uintptr) (schema.Event, string) {
	switch {
	case reply == 0:
		return schema.EventOtherError, "xpc_connection_send_message_with_reply_sync returned NULL"
	case reply == d.errInvalid:
		return schema.EventInvalid, d.dictGetString(reply, d.keyDescription)
	case reply == d.errInterrupted:
		return schema.EventInterrupted, d.dictGetString(reply, d.keyDescription)
	case reply == d.errTermination:
		return schema.EventTermination, d.dictGetString(reply, d.keyDescription)
	case d.getType(reply) == d.typeError:
		return schema.EventOtherError, d.dictGetString(reply, d.keyDescription)
	case d.getType(reply) == d.typeDictionary:
		return schema.EventReply, d.describe(reply)
	}
	return schema.EventOtherError, d.describe(reply)
}

func (d *darwinSystem) describe(obj uintptr) string {
	p := d.copyDescription(obj)
	if p == nil {
		return ""
	}
	defer d.free(p)
	return goString(p)
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
