// Package rig runs wxpayd's real binaries in tests: it builds the module's
// commands, writes a development identity and secret files, picks free
// ports on 127.0.0.1, starts processes with their own environment and log,
// waits for them to answer, SIGKILLs and restarts them, and stops every one
// it started when the test ends. It is for _test.go files only (cmd/wxpayd,
// bench/chaos, bench/load, bench/browser; bench/deploycheck takes its free
// ports).
//
// The pieces:
//
//   - Main and Build: a package whose tests build binaries calls rig.Main
//     from its TestMain; Build runs go build once per command per test
//     binary and Main removes the binaries when the tests end.
//   - FreeAddr, WriteSecret, ReadEnv, Getenv: ports, secret files and
//     env files (NAME=value lines).
//   - Start and Process: a child process whose stdout and stderr go to one
//     log file, appended across restarts. Kill SIGKILLs it, Restart starts
//     it again; Start and Restart wait for the command's Ready URL to
//     answer 200, and Ready and WaitReady wait for any URL. When the test
//     ends the process gets SIGTERM, then SIGKILL after 30 s, and the tail
//     of its log is shown if the test failed; on Linux the kernel SIGKILLs
//     it too if the test binary dies first (a timeout's panic).
//   - StartSim and Sim: wxpaysim serving a fresh identity from
//     `wxpaysim keygen`, and WxpaydEnv, the settings of a wxpayd that is its
//     merchant.
//   - Eventually: the poll of a test that waits for a condition. It is
//     sink/itest's Eventually (the one implementation) every 100 ms, the
//     pace of a test that asks a process over HTTP.
//
// A child process's environment is the test's without the WXPAY_*, WXPAYD_*
// and WXPAYSIM_* variables, so a developer's shell cannot leak into it,
// plus what the test gives it.
//
// rig imports only the standard library and sink/itest: the tests of any
// package of the module can import it without a cycle.
package rig
