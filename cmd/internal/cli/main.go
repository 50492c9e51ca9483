package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"calm/experiment"
	"calm/graph"
)

// ExitCode is 2 for bad flags or an impossible configuration, 130 for an
// interrupted run, 1 for any other error and 0 for none.
func ExitCode(err error) int {
	switch {
	case err == nil || errors.Is(err, ErrHelp):
		return 0
	case errors.As(err, new(UsageError)) || errors.Is(err, graph.ErrConfig) || errors.Is(err, experiment.ErrConfig):
		return 2
	case errors.As(err, new(*experiment.InterruptedError)):
		return 130
	}
	return 1
}

// gcPercent is the commands' GOGC, unless the environment sets one. A
// run's heap is mostly large float32 arrays (images, features, the
// classifier's rows) that hold no pointers, so a collection costs little:
// collecting at 1.5× the live heap instead of Go's 2× lowers the peak RSS
// (CIFAR-10's preset: 8.7 GiB at 2×).
const gcPercent = 50

// Main runs a command's run function the way users expect: SIGINT or
// SIGTERM stops the run at the next batch, keeping the last whole epoch's
// checkpoint (a second signal kills at once; every output is written
// atomically); an error is one line on stderr, and the exit status is
// ExitCode's.
func Main(name string, run func(ctx context.Context, args []string, stderr io.Writer) error) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Stderr)
	var ie *experiment.InterruptedError
	switch {
	case err == nil || errors.Is(err, ErrHelp):
	case errors.As(err, &ie):
		fmt.Fprintf(os.Stderr, "%s: %v; resume with: go run ./cmd/%s -resume %s\n", name, err, name, ie.Dir)
	default:
		// Errors of a package named like the command (stl10) name it once.
		fmt.Fprintf(os.Stderr, "%s: %s\n", name, strings.TrimPrefix(err.Error(), name+": "))
	}
	os.Exit(ExitCode(err))
}
