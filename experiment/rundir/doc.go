// Package rundir is a run's output directory: the lock that keeps two runs
// out of one directory, the names of its files, what a fresh run clears and
// what a resumed run reads back. It is its own package so that the rules of
// the directory (which the commands, the experiment and the tests all
// depend on) are in one place, apart from running the experiment.
package rundir
