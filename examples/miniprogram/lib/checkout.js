'use strict';
// Buying and paying, as the shop's pages run it. The pages only call this
// module and show what it answers; nothing here touches the UI.
//
// The rules (each has a test in ../test/checkout.test.js):
//   - One purchase has one Idempotency-Key, kept for every retry of it
//     (also across a page reload, in storage) until wxpayd gives a definite
//     answer, so a retry can never buy twice.
//   - 429 (PREPAY_BUDGET_EXHAUSTED, OVERLOADED), 503, 409
//     ORDER_IN_PROGRESS, a 5xx whose outcome wxpayd does not know, or no
//     answer at all: wait (Retry-After when given, else backoff) and send
//     the same request with the same key again, until a deadline.
//   - SOLD_OUT and LIMIT_EXCEEDED are answers, not errors: shown as such.
//   - wx.requestPayment's success is not proof of payment: the order is
//     read from wxpayd until it is PAID, with backoff, up to a deadline;
//     past it the buyer sees "being confirmed", never "failed".
//   - "requestPayment:fail cancel" keeps the order: the buyer may pay it
//     again with fresh parameters (POST /api/v1/orders/{no}/payment).
//
// Every function resolves with an outcome, never rejects:
//   { status, order?, error?, message? }
// status is one of: paid, pending (paid on the client, not yet confirmed by
// the server), cancelled, pay_failed (requestPayment failed: message is its
// errMsg), sold_out, limit_exceeded, closed, failed (the order's terminal
// states), unpaid (refresh only: the order waits for payment), error (error
// is the ApiError; retryable says whether tapping again may help).

const backoff = require('./backoff.js');
const apiMod = require('./api.js');

const CANCEL = 'requestPayment:fail cancel';

const defaults = {
  buyDeadlineMs: 20000, // give up retrying a purchase after this long (the key is kept)
  confirmDeadlineMs: 30000, // stop reading the order after a client-side success
  pendingKeyTTLMs: 10 * 60 * 1000, // a kept key older than this starts a new purchase
  retry: { base: 300, factor: 2, max: 5000, jitter: 0.2 },
  poll: { base: 250, factor: 1.6, max: 2000, jitter: 0.1 },
};

// keySeq makes two keys made in the same millisecond differ even when the
// random source repeats itself (a weak or stubbed one).
let keySeq = 0;

// newIdempotencyKey returns a fresh key: 1 to 64 printable ASCII characters.
function newIdempotencyKey(random) {
  const r = random || Math.random;
  keySeq = (keySeq + 1) % 1679616; // 36^4
  let s = 'mp-' + Date.now().toString(36) + '-' + keySeq.toString(36) + '-';
  for (let i = 0; i < 16; i++) s += Math.floor(r() * 36).toString(36);
  return s;
}

// retryable reports whether sending the same request again may succeed.
function retryable(err) {
  if (!(err instanceof apiMod.ApiError)) return false;
  if (err.status === 0) return err.code === 'NETWORK';
  if (err.status === 429 || err.status === 503) return true;
  if (err.status === 409) return err.code === 'ORDER_IN_PROGRESS';
  // 502 with WeChat's own code is a refusal (the order FAILED); 502
  // WECHAT_UNAVAILABLE and other 5xx are outcomes nobody knows yet.
  if (err.status === 502) return err.code === 'WECHAT_UNAVAILABLE';
  return err.status >= 500;
}

// outcomeOf maps an order wxpayd answered to an outcome, for states that
// need no payment.
function outcomeOf(order) {
  switch (order.state) {
    case 'PAID':
    case 'REFUNDING':
    case 'REFUNDED':
      return { status: 'paid', order: order };
    case 'CLOSED':
      return { status: 'closed', order: order };
    case 'FAILED':
      return { status: 'failed', order: order };
    default:
      return null;
  }
}

// memoryStorage is the storage when wx has none (tests).
function memoryStorage() {
  const m = {};
  return {
    get: function (k) { return m[k]; },
    set: function (k, v) { m[k] = v; },
    remove: function (k) { delete m[k]; },
  };
}

// wxStorage keeps values in the Mini Program's storage.
function wxStorage(wx) {
  return {
    get: function (k) { const v = wx.getStorageSync(k); return v === '' ? undefined : v; },
    set: function (k, v) { wx.setStorageSync(k, v); },
    remove: function (k) { wx.removeStorageSync(k); },
  };
}

// createCheckout returns the buying and paying flows of one buyer.
//   api      from api.createApi
//   wx       for wx.requestPayment (and storage, when it has one)
//   clock    { now, sleep } (default: the real one)
//   storage  { get, set, remove } for the kept Idempotency-Key (default:
//            wx's storage, else memory)
//   onStep   optional function({ step, ... }) called as the flow advances:
//            ordering, waiting { ms, error }, paying { order },
//            confirming { order }
//   options  overrides of the defaults above
//   random   for keys and jitter (default Math.random)
function createCheckout(opts) {
  const api = opts.api;
  const wx = opts.wx;
  const clock = opts.clock || backoff.realClock;
  const random = opts.random || Math.random;
  const storage = opts.storage || (wx && typeof wx.getStorageSync === 'function' ? wxStorage(wx) : memoryStorage());
  const o = Object.assign({}, defaults, opts.options || {});
  const step = function (s) { if (opts.onStep) opts.onStep(s); };

  function keyName(sku, quantity) { return 'wxpayd.pending.' + sku + '.' + quantity; }

  // purchaseKey returns the key kept for this purchase, or a new one.
  function purchaseKey(sku, quantity) {
    const kept = storage.get(keyName(sku, quantity));
    if (kept && kept.key && clock.now() - kept.at < o.pendingKeyTTLMs) return kept.key;
    const key = newIdempotencyKey(random);
    storage.set(keyName(sku, quantity), { key: key, at: clock.now() });
    return key;
  }

  // withRetries runs fn until it resolves, a non-retryable error, or the
  // deadline; the error is rethrown.
  async function withRetries(fn, deadlineMs) {
    const deadline = clock.now() + deadlineMs;
    for (let n = 0; ; n++) {
      try {
        return await fn();
      } catch (err) {
        if (!retryable(err)) throw err;
        const wait = err.retryAfterMs !== undefined ? err.retryAfterMs
          : backoff.delay(n, Object.assign({ random: random }, o.retry));
        if (clock.now() + wait > deadline) throw err;
        step({ step: 'waiting', ms: wait, error: err });
        await clock.sleep(wait);
      }
    }
  }

  // buy creates the order (retrying with the same key) and pays it.
  async function buy(sku, quantity) {
    const key = purchaseKey(sku, quantity);
    let order;
    try {
      step({ step: 'ordering', key: key });
      order = await withRetries(function () { return api.createOrder(sku, quantity, key); }, o.buyDeadlineMs);
    } catch (err) {
      if (retryable(err)) {
        // Undecided: the next tap sends the same key again.
        return { status: 'error', error: err, retryable: true };
      }
      storage.remove(keyName(sku, quantity));
      if (err.code === 'SOLD_OUT') return { status: 'sold_out', error: err };
      if (err.code === 'LIMIT_EXCEEDED') return { status: 'limit_exceeded', error: err };
      return { status: 'error', error: err, retryable: false };
    }
    storage.remove(keyName(sku, quantity)); // wxpayd decided: this purchase is this order
    return outcomeOf(order) || pay(order);
  }

  // pay opens WeChat's pay sheet for a PREPAID order; on the client's
  // success it confirms with the server.
  async function pay(order) {
    let params = order.payment;
    if (!params) {
      try {
        params = (await withRetries(function () { return api.payment(order.out_trade_no); }, o.buyDeadlineMs)).payment;
      } catch (err) {
        return { status: 'error', error: err, order: order, retryable: retryable(err) };
      }
    }
    step({ step: 'paying', order: order });
    // Exactly the five parameters: requestPayment takes no appId.
    const r = await apiMod.wxCall(wx.requestPayment, {
      timeStamp: params.timeStamp, nonceStr: params.nonceStr, package: params.package,
      signType: params.signType, paySign: params.paySign,
    });
    if (!r.ok) {
      const msg = (r.err && r.err.errMsg) || 'requestPayment:fail';
      if (msg === CANCEL) return { status: 'cancelled', order: order, message: msg };
      return { status: 'pay_failed', order: order, message: msg };
    }
    return confirm(order.out_trade_no, order);
  }

  // payAgain gets fresh payment parameters for an order kept after a
  // cancel (or a failed sheet) and pays it. An order no longer PREPAID is
  // read and answered as it is.
  async function payAgain(outTradeNo) {
    let order;
    try {
      order = await withRetries(function () { return api.payment(outTradeNo); }, o.buyDeadlineMs);
    } catch (err) {
      if (err.code === 'CONFLICT') return refresh(outTradeNo); // paid or closed meanwhile
      return { status: 'error', error: err, retryable: retryable(err) };
    }
    return outcomeOf(order) || pay(order);
  }

  // confirm reads the order until it leaves PREPAID or the deadline passes.
  async function confirm(outTradeNo, last) {
    step({ step: 'confirming', order: last });
    const deadline = clock.now() + o.confirmDeadlineMs;
    for (let n = 0; ; n++) {
      try {
        last = await api.getOrder(outTradeNo);
        const done = outcomeOf(last);
        if (done) return done;
      } catch (err) {
        // Reading failed (busy, no network): keep trying until the deadline.
        if (err.status >= 400 && err.status < 500 && err.status !== 429) {
          return { status: 'error', error: err, order: last, retryable: false };
        }
      }
      const wait = backoff.delay(n, Object.assign({ random: random }, o.poll));
      if (clock.now() + wait > deadline) {
        return { status: 'pending', order: last };
      }
      await clock.sleep(wait);
    }
  }

  // refresh reads an order once and says what the buyer may do with it.
  async function refresh(outTradeNo) {
    try {
      const order = await withRetries(function () { return api.getOrder(outTradeNo); }, o.buyDeadlineMs);
      return outcomeOf(order) || { status: 'unpaid', order: order };
    } catch (err) {
      return { status: 'error', error: err, retryable: retryable(err) };
    }
  }

  return { buy: buy, pay: pay, payAgain: payAgain, confirm: confirm, refresh: refresh };
}

module.exports = {
  createCheckout: createCheckout, newIdempotencyKey: newIdempotencyKey, retryable: retryable,
  CANCEL: CANCEL, defaults: defaults,
};
