'use strict';
const test = require('node:test');
const assert = require('node:assert');

const { createApi, ApiError } = require('../lib/api.js');
const backoff = require('../lib/backoff.js');
const s = require('./stub.js');

const BASE = 'https://shop.example.com';

test('login sends the wx.login code and later calls carry the token', async () => {
  const wx = s.makeWx({
    'POST /api/v1/login': [s.loginOK()],
    'GET /api/v1/orders/{no}': [s.answer(200, s.order('01A', 'PAID'))],
  });
  const api = createApi({ wx: wx, baseURL: BASE + '/', clock: s.fakeClock() });
  const o = await api.getOrder('01A');
  assert.strictEqual(o.state, 'PAID');
  const [login] = wx.requests('POST /api/v1/login');
  assert.deepStrictEqual(login.data, { code: 'code-buyer.1' });
  assert.strictEqual(login.url, BASE + '/api/v1/login');
  const [get] = wx.requests('GET /api/v1/orders/{no}');
  assert.strictEqual(get.header.Authorization, 'Bearer tok1');
  assert.strictEqual(get.url, BASE + '/api/v1/orders/01A');
});

test('an expired session logs in again once and the request is sent again', async () => {
  const wx = s.makeWx({
    'POST /api/v1/login': [s.loginOK()],
    'GET /api/v1/orders/{no}': [s.apiError(401, 'SESSION_EXPIRED'), s.answer(200, s.order('01A', 'PAID'))],
  });
  const api = createApi({ wx: wx, baseURL: BASE, clock: s.fakeClock() });
  const o = await api.getOrder('01A');
  assert.strictEqual(o.state, 'PAID');
  assert.strictEqual(wx.calls.login, 2);
  const gets = wx.requests('GET /api/v1/orders/{no}');
  assert.deepStrictEqual(gets.map((r) => r.header.Authorization), ['Bearer tok1', 'Bearer tok2']);
});

test('a session refused again after the new login is not retried a second time', async () => {
  const wx = s.makeWx({
    'POST /api/v1/login': [s.loginOK()],
    'GET /api/v1/orders/{no}': [s.apiError(401, 'SESSION_EXPIRED')],
  });
  const api = createApi({ wx: wx, baseURL: BASE, clock: s.fakeClock() });
  await assert.rejects(api.getOrder('01A'), (e) => e instanceof ApiError && e.code === 'SESSION_EXPIRED' && e.status === 401);
  assert.strictEqual(wx.calls.login, 2);
  assert.strictEqual(wx.requests('GET /api/v1/orders/{no}').length, 2);
});

test('a session past expires_in is renewed before the request, not after a 401', async () => {
  const clock = s.fakeClock();
  const wx = s.makeWx({
    'POST /api/v1/login': [s.loginOK()],
    'GET /api/v1/orders/{no}': [s.answer(200, s.order('01A', 'PAID'))],
  });
  const api = createApi({ wx: wx, baseURL: BASE, clock: clock });
  await api.getOrder('01A');
  clock.advance(7200 * 1000);
  await api.getOrder('01A');
  assert.strictEqual(wx.calls.login, 2);
  assert.deepStrictEqual(wx.requests('GET /api/v1/orders/{no}').map((r) => r.header.Authorization), ['Bearer tok1', 'Bearer tok2']);
});

test('concurrent first calls share one login', async () => {
  const wx = s.makeWx({
    'POST /api/v1/login': [s.loginOK()],
    'GET /api/v1/orders/{no}': [s.answer(200, s.order('01A', 'PAID'))],
  });
  const api = createApi({ wx: wx, baseURL: BASE, clock: s.fakeClock() });
  await Promise.all([api.getOrder('01A'), api.getOrder('01A'), api.getOrder('01A')]);
  assert.strictEqual(wx.calls.login, 1);
});

test('no answer is a NETWORK error; an error body gives code and Retry-After', async () => {
  const wx = s.makeWx({
    'POST /api/v1/login': [s.loginOK()],
    'GET /api/v1/orders/{no}': [s.noAnswer('request:fail timeout'), s.apiError(429, 'OVERLOADED', 3)],
  });
  const api = createApi({ wx: wx, baseURL: BASE, clock: s.fakeClock() });
  await assert.rejects(api.getOrder('01A'), (e) => e.code === 'NETWORK' && e.status === 0 && /timeout/.test(e.detail));
  await assert.rejects(api.getOrder('01A'), (e) => e.code === 'OVERLOADED' && e.status === 429 && e.retryAfterMs === 3000);
});

test('a failed wx.login is LOGIN_FAILED', async () => {
  const wx = s.makeWx({});
  wx.login = (o) => o.fail({ errMsg: 'login:fail auth deny' });
  const api = createApi({ wx: wx, baseURL: BASE, clock: s.fakeClock() });
  await assert.rejects(api.getOrder('01A'), (e) => e.code === 'LOGIN_FAILED' && /auth deny/.test(e.detail));
});

test('backoff grows by its factor, stops at max and jitters downwards only', () => {
  const none = { base: 100, factor: 2, max: 1000, jitter: 0 };
  assert.deepStrictEqual([0, 1, 2, 3, 4, 10].map((n) => backoff.delay(n, none)), [100, 200, 400, 800, 1000, 1000]);
  const most = Object.assign({}, none, { jitter: 0.2, random: () => 0.999999 });
  assert.strictEqual(backoff.delay(2, most), 320);
});

test('Retry-After is read as seconds or as an HTTP date', () => {
  assert.strictEqual(backoff.retryAfterMs('2', 9), 2000);
  assert.strictEqual(backoff.retryAfterMs(undefined, 9), 9);
  assert.strictEqual(backoff.retryAfterMs('soon', 9), 9);
  const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
  assert.strictEqual(backoff.retryAfterMs('Wed, 21 Oct 2026 07:28:05 GMT', 9, now), 5000);
});
