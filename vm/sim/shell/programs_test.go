package shell

import (
	"context"
	"fmt"
	"strings"
)

// fakePrograms stand in for the macOS model: a few programs that show
// what the shell hands them.
type fakePrograms struct{ fs *FS }

const fakeAppBinary = "/Applications/Example.app/Contents/MacOS/Example"

func (f *fakePrograms) Commands() map[string]Command {
	return map[string]Command{
		"hello": func(_ context.Context, p *Proc) int {
			fmt.Fprintf(p.Stdout, "hello from %s\n", p.User)
			return 0
		},
		"fail": func(_ context.Context, p *Proc) int {
			fmt.Fprintln(p.Stderr, "fail: it failed")
			return 3
		},
		"amroot": func(_ context.Context, p *Proc) int {
			fmt.Fprintln(p.Stdout, p.Root)
			return 0
		},
		"args": func(_ context.Context, p *Proc) int {
			for _, a := range p.Args[1:] {
				fmt.Fprintf(p.Stdout, "[%s]", a)
			}
			fmt.Fprintln(p.Stdout)
			return 0
		},
		"envof": func(_ context.Context, p *Proc) int {
			fmt.Fprintln(p.Stdout, p.Env[p.Args[1]])
			return 0
		},
		// spawn runs its arguments as a program of its own, as
		// launchctl asuser does.
		"spawn": func(ctx context.Context, p *Proc) int { return p.Exec(ctx, p.Args[1:], false) },
		"yes": func(ctx context.Context, p *Proc) int {
			for ctx.Err() == nil {
				p.Stdout.Write([]byte("y\n")) // ignores errors, as careless programs do
			}
			return 141
		},
		"panic": func(context.Context, *Proc) int { panic("boom") },
	}
}

func (f *fakePrograms) Program(guestPath string) (Command, bool) {
	if guestPath != fakeAppBinary {
		return nil, false
	}
	if _, err := f.fs.Stat(guestPath); err != nil {
		return nil, false
	}
	return func(_ context.Context, p *Proc) int {
		fmt.Fprintf(p.Stdout, "app %s\n", strings.Join(p.Args[1:], " "))
		return 0
	}, true
}
