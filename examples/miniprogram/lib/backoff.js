'use strict';
// Waiting between attempts: exponential backoff with jitter, Retry-After,
// and the clock every wait goes through (tests replace it).
//
// CommonJS without dependencies: the same file runs in the Mini Program,
// in wxpaysim's browser simulator and in Node's test runner.

// realClock is the clock of a running program. A test passes its own
// { now(), sleep(ms) } so that waits take no real time.
const realClock = {
  now: function () { return Date.now(); },
  sleep: function (ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); },
};

// delay returns the wait before attempt n (0-based) of a backoff: base ×
// factor^n, capped at max, less up to jitter×100 % of it drawn by random()
// (so that many buyers retrying at once spread out).
function delay(n, opts) {
  const o = Object.assign({ base: 300, factor: 2, max: 5000, jitter: 0.2, random: Math.random }, opts || {});
  let d = o.base * Math.pow(o.factor, n);
  if (!(d < o.max)) d = o.max;
  return Math.round(d * (1 - o.jitter * o.random()));
}

// retryAfterMs turns a Retry-After header value (delta seconds, or an HTTP
// date) into milliseconds, or returns fallback when it is absent or unreadable.
function retryAfterMs(value, fallback, now) {
  if (value === undefined || value === null || value === '') return fallback;
  const s = String(value).trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  if (!isNaN(t)) return Math.max(0, t - (now === undefined ? Date.now() : now));
  return fallback;
}

module.exports = { realClock: realClock, delay: delay, retryAfterMs: retryAfterMs };
