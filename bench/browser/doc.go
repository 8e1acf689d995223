// Package browser tests the buyer's side in a real browser: headless
// Chromium, driven through chromedp, opens wxpaysim's Mini Program
// simulator page (GET /sim/miniprogram/), which runs the example Mini
// Program's own modules (examples/miniprogram/lib) against the real wxpayd
// and wxpaysim binaries on loopback.
//
// TestMiniProgramInChromium covers: a buyer logs in, buys, pays and sees
// PAID (read from wxpayd, not the client); a second buyer sees SOLD_OUT; a
// buyer cancels the pay sheet and pays again from the order page; a
// paySign tampered with on the wire is refused by the simulated client with
// WeChat's error and nothing is paid. It also times login → PAID (three
// runs, median) for docs/benchmarks.md.
//
// Chromium is Debian's chromium package (`bash deploy/local/browser.sh
// install`, which `make test` runs); WXPAYD_CHROMIUM names another binary.
// With WXPAYD_INTEGRATION=1 (set by `make test`) a missing Chromium fails
// the test; otherwise it skips and says how to install it.
//
// Screenshots of each end state and timings.json go to
// WXPAYD_BROWSER_OUT, by default bench/browser/testdata/screenshots
// (git-ignored).
package browser
