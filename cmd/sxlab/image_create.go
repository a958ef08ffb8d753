package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"text/template"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/vm/vz"
)

func newImageCreateCmd() *cobra.Command { return imageCreateCmd(vz.NewInstaller()) }

// Flags whose errors name them.
const (
	memoryFlag = "memory"
	diskFlag   = "disk-size"
)

// imageCreateCmd is image create with inst installing macOS (tests pass a
// stand-in).
func imageCreateCmd(inst vz.Installer) *cobra.Command {
	var (
		sf                 storeFlags
		ipsw, memory, disk string
		cpus               int
	)
	cmd := &cobra.Command{
		Use:   "create NAME --ipsw PATH|URL|latest",
		Short: "Install macOS from a restore image (IPSW) into a new golden bundle in the vz store",
		Long: `Install macOS from a restore image into a new golden bundle NAME in the vz
store, with Virtualization.framework's installer (macOS 13 or later on Apple
Silicon). --ipsw is a restore image file, an http(s) URL (downloaded into
STORE/ipsw, resumed when interrupted, reused by later creates) or latest, the
newest image this Mac supports. The disk is sparse: it takes room only as
macOS fills it. The bundle appears in the store only when the installation
succeeded. Then it needs a few steps by hand, printed at the end.

Sizes are written as in the configuration: 8GiB, 8G and 8192MiB are binary
units, 8GB is 8*10^9 bytes; memory must come to whole MiB.`,
		Args: cobra.ExactArgs(1),
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&ipsw, "ipsw", "", "the restore image: a file, an http(s) URL, or latest")
	cmd.Flags().IntVar(&cpus, "cpus", 0, fmt.Sprintf("CPUs (default %d, or the image's minimum if higher)", vz.DefaultCPUCount))
	cmd.Flags().StringVar(&memory, memoryFlag, "", "memory (default 8GiB, or the image's minimum if higher)")
	cmd.Flags().StringVar(&disk, diskFlag, "", fmt.Sprintf("disk size, at least %dGiB (default 80GiB)", vz.MinDiskSize>>30))
	cmd.RunE = func(c *cobra.Command, args []string) error {
		name := args[0]
		if ipsw == "" {
			return usageError("--ipsw is required: a restore image file, an http(s) URL, or latest")
		}
		if cpus < 0 {
			return usageError("--cpus %d: give at least 1", cpus)
		}
		memBytes, err := parseSize(memoryFlag, memory)
		if err != nil {
			return err
		}
		diskBytes, err := parseSize(diskFlag, disk)
		if err != nil {
			return err
		}
		if diskBytes > math.MaxInt64 {
			return usageError("--%s %q: too large", diskFlag, disk)
		}
		store, err := sf.resolve()
		if err != nil {
			return err
		}
		ctx, errw := c.Context(), c.ErrOrStderr()
		o := vz.CreateOptions{
			Store: store, Name: name, CPUCount: cpus, MemorySize: memBytes, DiskSize: int64(diskBytes),
			Installer: inst,
		}
		// Before a download of many gigabytes: are the name and sizes usable?
		if _, err := o.Check(); err != nil {
			return usageError("create image %s: %v", name, err)
		}

		dl := newMeter(errw, "download", true)
		o.IPSW, err = vz.ResolveIPSW(ctx, ipsw, vz.IPSWOptions{Store: store, Installer: inst, Progress: dl.update})
		dl.close(err == nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(errw, "using restore image %s\n", o.IPSW)

		in := newMeter(errw, "install", false)
		o.Progress = func(f float64) { in.update(int64(f*1000), 1000) }
		res, err := vz.Create(ctx, o)
		in.close(err == nil)
		if err != nil {
			return err
		}
		return printNextSteps(c.OutOrStdout(), name, store, res)
	}
	return cmd
}

// parseSize reads a size flag as the configuration reads sizes
// (lab.ByteSize: 8GiB, 8G and 8192MiB are binary, 8GB is 10^9 bytes);
// empty is 0, the default. A VM's memory and disk come in whole MiB.
// Errors are usage errors naming the flag.
func parseSize(flag, s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	var b lab.ByteSize
	if err := b.DecodeScalar(s); err != nil {
		return 0, usageError("--%s %v", flag, err)
	}
	switch {
	case b <= 0:
		return 0, usageError("--%s %q: give more than 0", flag, s)
	case b%(1<<20) != 0:
		return 0, usageError("--%s %q: give whole MiB (%d bytes is not; GB counts 10^9 bytes, GiB 2^30)", flag, s, int64(b))
	}
	return uint64(b), nil
}

// meter shows one long task on w: a bar at a terminal, else a line at
// each tenth (or each GiB of a download of unknown size), for logs.
type meter struct {
	w     io.Writer
	label string
	bytes bool // counts bytes; else thousandths
	tty   bool
	bar   *progressbar.ProgressBar
	max   int64
	step  int64 // the last step printed, in plain mode
}

func newMeter(w io.Writer, label string, bytes bool) *meter {
	_, isTerm := terminalFd(w)
	mode, _ := resolveProgress(progressAuto, os.LookupEnv, isTerm)
	return &meter{w: w, label: label, bytes: bytes, tty: mode == progressTTY, step: -1}
}

func (m *meter) update(done, total int64) {
	if m.tty {
		m.draw(done, total)
		return
	}
	step := int64(-1)
	switch {
	case total > 0:
		step = 10 * done / total
	case m.bytes:
		step = done >> 30
	}
	if step == m.step {
		return
	}
	m.step = step
	switch {
	case !m.bytes:
		fmt.Fprintf(m.w, "%s %d%%\n", m.label, step*10)
	case total > 0:
		fmt.Fprintf(m.w, "%s %s of %s (%d%%)\n", m.label, artifacts.HumanSize(done), artifacts.HumanSize(total), step*10)
	default:
		fmt.Fprintf(m.w, "%s %s\n", m.label, artifacts.HumanSize(done))
	}
}

func (m *meter) draw(done, total int64) {
	switch {
	case m.bar == nil:
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(m.w),
			progressbar.OptionSetDescription(m.label),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
		}
		if m.bytes {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true), progressbar.OptionShowCount())
		}
		m.bar = progressbar.NewOptions64(total, opts...)
	case total != m.max:
		m.bar.ChangeMax64(total) // a download that started over
	}
	m.max = total
	// A display that cannot be drawn is not worth failing for.
	_ = m.bar.Set64(done)
}

// close ends the bar, full when the task finished, and the line it is on.
func (m *meter) close(finished bool) {
	if m.bar == nil {
		return
	}
	if finished {
		_ = m.bar.Finish()
	}
	_ = m.bar.Exit()
	fmt.Fprintln(m.w)
}

// nextSteps is what to do by hand with a new image: macOS is installed
// but not set up, and warm needs SSH and the admin user.
var nextSteps = template.Must(template.New("steps").Parse(`created image {{.Name}}: {{.Res.Dir}}
  macOS {{.Res.OSVersion}} ({{.Res.Build}}), {{.Res.CPUCount}} CPUs, {{.Memory}} memory, {{.Disk}} disk (sparse), MAC {{.Res.MACAddress}}
{{- range .Res.Raised}}
  {{.}}
{{- end}}

macOS is installed but not set up yet. Once, by hand:

 1. Boot it with its display. sxlab has no window of its own, and
    "sxlab image warm" needs SSH, which is not on yet, so this first boot is
    in an app that shows a VM's screen. With tart (brew install
    cirruslabs/cli/tart), move the bundle to tart and run it there:
      mkdir -p ~/.tart/vms && mv {{.Res.Dir}} ~/.tart/vms/{{.Name}}
      tart run {{.Name}}
    (any other Virtualization.framework app that opens tart bundles does too)
 2. In Setup Assistant, create the user admin, with a password of your
    choice: it goes in images.{{.Name}}.auth below.
 3. Turn on Remote Login: System Settings > General > Sharing > Remote Login,
    or in Terminal:
      sudo systemsetup -setremotelogin on
 4. Let admin sudo without a password:
      echo 'admin ALL=(ALL) NOPASSWD: ALL' | sudo tee /etc/sudoers.d/admin
 5. Leave FileVault off (Setup Assistant offers it; say no). A FileVault
    guest without a display waits at the unlock screen after every boot and
    never reaches SSH (cirruslabs/tart issue 831), and macOS turns automatic
    login off while FileVault is on. Check, and turn it off if needed:
      fdesetup status
      sudo fdesetup disable
 6. Turn on automatic login for admin: System Settings > Users & Groups >
    Automatically log in as: admin (it asks for admin's password). Launch,
    quit and UI approval run in admin's GUI session, which exists only when
    admin is logged in on the console. After a reboot,
      stat -f %Su /dev/console
    must print admin.
 7. Grant /usr/libexec/sshd-keygen-wrapper (the process TCC holds
    responsible for commands run over SSH) Accessibility, Apple Events and
    Full Disk Access, so "approve: ui" can script System Settings over SSH.
    Full Disk Access: System Settings > Privacy & Security > Full Disk
    Access > +, Cmd-Shift-G, /usr/libexec/sshd-keygen-wrapper; the same for
    Accessibility. Apple Events is asked for on first use and cannot be
    added by hand: tart's base images (ghcr.io/cirruslabs/macos-*-base)
    already have all three, written into TCC.db with SIP disabled
    (cirruslabs/macos-image-templates, scripts/update-tcc-database.sh); to
    do the same, boot into recoveryOS, run csrutil disable, write the rows
    into /Library/Application Support/com.apple.TCC/TCC.db (Accessibility,
    Full Disk Access) and ~/Library/Application Support/com.apple.TCC/TCC.db
    (Apple Events, target com.apple.systemevents) with sqlite3, then csrutil
    enable. Starting from a tart base image is the short way.
 8. Turn on Network Extension debug logging, persisted across reboots:
      sudo log config --mode "level:debug,persist:debug" --subsystem com.apple.networkextension
    (log config --status --subsystem com.apple.networkextension then says
    DEBUG PERSIST_DEBUG)
 9. Keep it awake and unlocked:
      sudo pmset -a sleep 0 displaysleep 0
    and in System Settings > Lock Screen, never require a password after
    the screen saver or display turns off.
10. For cells that use "approve: mdm" (a copy of this golden, one per
    approval value): enrol it in your MDM once, by hand, approve the
    enrolment in System Settings, and scope a System Extensions payload
    allowing your team to it. Keep a golden without it for cells that
    approve through System Settings: with the policy macOS approves at
    once and nothing stays pending.
11. Shut it down (Apple menu > Shut Down).
12. If you moved it to tart, bring it back and delete tart's copy:
      sxlab image import-tart {{.Name}} --store {{.Store}}
      tart delete {{.Name}}

Then add it to config.yaml:

images:
  {{.Name}}:
    vz: {bundle: {{.Name}}}
    user: admin
    auth: {password_env: SXLAB_GUEST_PASSWORD}

and, with SXLAB_GUEST_PASSWORD set to admin's password, warm it (it boots
the image, checks SSH and saves a state for clones to restore):

  sxlab image warm {{.Name}}

and check the golden (automatic login, FileVault, the TCC grants, MDM, ...;
these checks have not been run on a Mac yet):

  sxlab image check {{.Name}}
`))

func printNextSteps(w io.Writer, name, store string, res vz.CreateResult) error {
	return nextSteps.Execute(w, map[string]any{
		"Name": name, "Store": store, "Res": res,
		"Memory": artifacts.HumanSize(int64(res.MemorySize)), "Disk": artifacts.HumanSize(res.DiskSize),
	})
}
