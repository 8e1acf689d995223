'use strict';
const test = require('node:test');
const assert = require('node:assert');

const { createApi } = require('../lib/api.js');
const { createCheckout } = require('../lib/checkout.js');
const { describe } = require('../lib/present.js');
const s = require('./stub.js');

const CREATE = 'POST /api/v1/orders';
const GET = 'GET /api/v1/orders/{no}';
const PAYMENT = 'POST /api/v1/orders/{no}/payment';
const LOGIN = 'POST /api/v1/login';

// setup builds a checkout over a scripted wxpayd and buyer.
function setup(routes, pay, options) {
  const clock = s.fakeClock();
  const wx = s.makeWx(Object.assign({ [LOGIN]: [s.loginOK()] }, routes), pay);
  const api = createApi({ wx: wx, baseURL: 'https://shop.example.com', clock: clock });
  const steps = [];
  const co = createCheckout({
    api: api, wx: wx, clock: clock, onStep: (st) => steps.push(st.step), options: options, random: () => 0.5,
  });
  return { wx: wx, clock: clock, co: co, steps: steps };
}

const keysOf = (wx) => wx.requests(CREATE).map((r) => r.header['Idempotency-Key']);

test('buy, pay, then read the order until wxpayd says PAID', async () => {
  const { wx, co, clock, steps } = setup({
    [CREATE]: [s.answer(201, s.order('01A', 'PREPAID'))],
    [GET]: [s.answer(200, s.order('01A', 'PREPAID')), s.answer(200, s.order('01A', 'PREPAID')), s.answer(200, s.order('01A', 'PAID'))],
  });
  const out = await co.buy('tea', 1);
  assert.strictEqual(out.status, 'paid');
  assert.strictEqual(out.order.state, 'PAID');
  assert.deepStrictEqual(wx.requests(CREATE)[0].data, { sku: 'tea', quantity: 1 });
  // requestPayment gets exactly WeChat's five parameters, no appId.
  assert.deepStrictEqual(Object.keys(wx.calls.requestPayment[0]).filter((k) => typeof wx.calls.requestPayment[0][k] !== 'function').sort(),
    ['nonceStr', 'package', 'paySign', 'signType', 'timeStamp']);
  assert.strictEqual(wx.requests(GET).length, 3);
  // Backoff between reads: growing waits.
  assert.strictEqual(clock.sleeps.length, 2);
  assert.ok(clock.sleeps[1] > clock.sleeps[0], 'waits grow: ' + clock.sleeps);
  assert.deepStrictEqual(steps, ['ordering', 'paying', 'confirming']);
});

test('429 waits for Retry-After and retries with the same Idempotency-Key', async () => {
  const { wx, co, clock } = setup({
    [CREATE]: [s.apiError(429, 'PREPAY_BUDGET_EXHAUSTED', 2), s.apiError(429, 'PREPAY_BUDGET_EXHAUSTED', 1),
      s.answer(201, s.order('01A', 'PREPAID'))],
    [GET]: [s.answer(200, s.order('01A', 'PAID'))],
  });
  const out = await co.buy('tea', 1);
  assert.strictEqual(out.status, 'paid');
  const keys = keysOf(wx);
  assert.strictEqual(keys.length, 3);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]), 'one key: ' + keys);
  assert.deepStrictEqual(clock.sleeps, [2000, 1000]);
});

test('no answer, ORDER_IN_PROGRESS and a 503 are retried with the same key; the replay answer 200 is the order', async () => {
  const { wx, co } = setup({
    [CREATE]: [s.noAnswer(), s.apiError(409, 'ORDER_IN_PROGRESS', 1), s.apiError(503, 'SHARD_UNAVAILABLE', 1),
      s.answer(200, s.order('01A', 'PREPAID'))],
    [GET]: [s.answer(200, s.order('01A', 'PAID'))],
  });
  assert.strictEqual((await co.buy('tea', 1)).status, 'paid');
  const keys = keysOf(wx);
  assert.strictEqual(keys.length, 4);
  assert.strictEqual(new Set(keys).size, 1);
});

test('a purchase still undecided at the deadline keeps its key for the next tap; a decided one does not', async () => {
  const { wx, co } = setup({
    [CREATE]: [s.apiError(503, 'OVERLOADED', 5)],
  }, ['ok'], { buyDeadlineMs: 12000 });
  const first = await co.buy('tea', 1);
  assert.strictEqual(first.status, 'error');
  assert.strictEqual(first.retryable, true);
  assert.strictEqual(describe(first).state, 'error');
  const n = wx.requests(CREATE).length;
  assert.strictEqual(n, 3); // at 0, 5 and 10 s; 15 s is past the deadline

  // The next tap: the same key, and this time wxpayd decides.
  wx.script(CREATE, [s.apiError(409, 'SOLD_OUT')]);
  const second = await co.buy('tea', 1);
  assert.strictEqual(second.status, 'sold_out');
  assert.strictEqual(new Set(keysOf(wx)).size, 1, 'the second tap reused the key: ' + keysOf(wx));

  // Decided: a third purchase is a new one, with a new key.
  await co.buy('tea', 1);
  assert.strictEqual(new Set(keysOf(wx)).size, 2);
});

test('SOLD_OUT and LIMIT_EXCEEDED are answers shown as such, with no pay sheet', async () => {
  for (const [code, status, title] of [['SOLD_OUT', 'sold_out', 'Sold out'], ['LIMIT_EXCEEDED', 'limit_exceeded', 'Limit reached']]) {
    const { wx, co } = setup({ [CREATE]: [s.apiError(409, code)] });
    const out = await co.buy('tea', 1);
    assert.strictEqual(out.status, status);
    assert.strictEqual(describe(out).title, title);
    assert.strictEqual(wx.requests(CREATE).length, 1, code + ' is not retried');
    assert.strictEqual(wx.calls.requestPayment.length, 0);
  }
});

test('a WeChat refusal (502 with its code) is not retried', async () => {
  const { wx, co } = setup({ [CREATE]: [s.apiError(502, 'PARAM_ERROR')] });
  const out = await co.buy('tea', 1);
  assert.strictEqual(out.status, 'error');
  assert.strictEqual(out.retryable, false);
  assert.strictEqual(wx.requests(CREATE).length, 1);
});

test('an expired session during the purchase logs in again once and keeps the key', async () => {
  const { wx, co } = setup({
    [CREATE]: [s.apiError(401, 'SESSION_EXPIRED'), s.answer(201, s.order('01A', 'PREPAID'))],
    [GET]: [s.answer(200, s.order('01A', 'PAID'))],
  });
  assert.strictEqual((await co.buy('tea', 1)).status, 'paid');
  assert.strictEqual(wx.calls.login, 2);
  const reqs = wx.requests(CREATE);
  assert.deepStrictEqual(reqs.map((r) => r.header.Authorization), ['Bearer tok1', 'Bearer tok2']);
  assert.strictEqual(new Set(keysOf(wx)).size, 1);
});

test('a client-side success not confirmed by the deadline is pending, never failed', async () => {
  const { wx, co, clock } = setup({
    [CREATE]: [s.answer(201, s.order('01A', 'PREPAID'))],
    [GET]: [s.noAnswer(), s.apiError(503, 'OVERLOADED', 1), s.answer(200, s.order('01A', 'PREPAID'))],
  }, ['ok'], { confirmDeadlineMs: 10000 });
  const t0 = clock.now();
  const out = await co.buy('tea', 1);
  assert.strictEqual(out.status, 'pending');
  assert.strictEqual(describe(out).state, 'pending');
  assert.ok(clock.now() - t0 <= 10000, 'stopped by the deadline');
  assert.ok(wx.requests(GET).length >= 5, 'kept reading: ' + wx.requests(GET).length);
  assert.ok(clock.sleeps.every((ms) => ms <= 2000), 'waits capped: ' + clock.sleeps);
});

test('cancel keeps the order; pay again gets fresh parameters and pays it', async () => {
  const { wx, co } = setup({
    [CREATE]: [s.answer(201, s.order('01A', 'PREPAID'))],
    [PAYMENT]: [s.answer(200, s.order('01A', 'PREPAID'))],
    [GET]: [s.answer(200, s.order('01A', 'PAID'))],
  }, ['cancel', 'ok']);
  const first = await co.buy('tea', 1);
  assert.strictEqual(first.status, 'cancelled');
  assert.strictEqual(first.order.out_trade_no, '01A');
  assert.strictEqual(describe(first).payAgain, true);
  assert.strictEqual(wx.requests(GET).length, 0, 'a cancel is not confirmed with the server');

  const again = await co.payAgain('01A');
  assert.strictEqual(again.status, 'paid');
  assert.strictEqual(wx.requests(CREATE).length, 1, 'no second order');
  assert.strictEqual(wx.requests(PAYMENT)[0].url, 'https://shop.example.com/api/v1/orders/01A/payment');
  const [p1, p2] = wx.calls.requestPayment;
  assert.strictEqual(p1.package, p2.package, 'the same prepay');
  assert.notStrictEqual(p1.nonceStr, p2.nonceStr, 'freshly signed');
});

test('pay again on an order paid meanwhile answers PAID without a pay sheet', async () => {
  const { wx, co } = setup({
    [PAYMENT]: [s.apiError(409, 'CONFLICT')],
    [GET]: [s.answer(200, s.order('01A', 'PAID'))],
  });
  const out = await co.payAgain('01A');
  assert.strictEqual(out.status, 'paid');
  assert.strictEqual(wx.calls.requestPayment.length, 0);
});

test('a refused pay sheet (bad paySign) is pay_failed with WeChat errMsg, and the order is kept', async () => {
  const { wx, co } = setup({ [CREATE]: [s.answer(201, s.order('01A', 'PREPAID'))] },
    ['requestPayment:fail 支付验证签名失败']);
  const out = await co.buy('tea', 1);
  assert.strictEqual(out.status, 'pay_failed');
  assert.strictEqual(out.message, 'requestPayment:fail 支付验证签名失败');
  assert.strictEqual(describe(out).payAgain, true);
  assert.strictEqual(wx.requests(GET).length, 0);
});

test('a replay that finds the order already PAID shows it paid', async () => {
  const { wx, co } = setup({ [CREATE]: [s.answer(200, s.order('01A', 'PAID'))] });
  assert.strictEqual((await co.buy('tea', 1)).status, 'paid');
  assert.strictEqual(wx.calls.requestPayment.length, 0);
});
