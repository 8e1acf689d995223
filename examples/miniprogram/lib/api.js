'use strict';
// The shop's server, wxpayd, as the Mini Program sees it: wx.login and
// POST /api/v1/login for a session, then the buyer API with the session's
// bearer token. Every call goes through the `wx` given to createApi, so
// the same module runs on a phone (the real wx), in wxpaysim's browser
// simulator (its wx) and in Node tests (a stand-in).
//
// Errors are ApiError: `status` is the HTTP status (0 when no answer came
// back), `code` wxpayd's error code (SOLD_OUT, LIMIT_EXCEEDED,
// PREPAY_BUDGET_EXHAUSTED, SESSION_EXPIRED, ...; NETWORK and LOGIN_FAILED
// are this module's own) and `retryAfterMs` the server's Retry-After.

const backoff = require('./backoff.js');

class ApiError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(code + ': ' + message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = message;
    this.retryAfterMs = retryAfterMs; // undefined when the server sent none
  }
}

// header returns the value of a response header, whatever its case.
function header(h, name) {
  if (!h) return undefined;
  const want = name.toLowerCase();
  for (const k of Object.keys(h)) {
    if (k.toLowerCase() === want) return h[k];
  }
  return undefined;
}

// wxCall runs one callback-style wx API (wx.request, wx.login, ...) as a
// promise that always resolves: { ok: true, res } or { ok: false, err }.
function wxCall(fn, opts) {
  return new Promise(function (resolve) {
    fn(Object.assign({}, opts, {
      success: function (res) { resolve({ ok: true, res: res }); },
      fail: function (err) { resolve({ ok: false, err: err || { errMsg: 'fail' } }); },
    }));
  });
}

// errorOf turns a non-2xx wx.request answer into an ApiError.
function errorOf(res, now) {
  const d = res.data;
  const e = d && typeof d === 'object' && d.error ? d.error : null;
  const ra = header(res.header, 'Retry-After');
  return new ApiError(res.statusCode, e && e.code ? e.code : 'HTTP_' + res.statusCode,
    e && e.message ? e.message : 'unexpected answer', backoff.retryAfterMs(ra, undefined, now));
}

// createApi returns the client of one buyer.
//   wx       the wx object (wx.login, wx.request)
//   baseURL  wxpayd's address, e.g. https://shop.example.com (no trailing /)
//   clock    { now, sleep } (default: the real one)
//   timeout  wx.request timeout in ms (default 10000)
function createApi(opts) {
  const wx = opts.wx;
  const base = String(opts.baseURL || '').replace(/\/+$/, '');
  const clock = opts.clock || backoff.realClock;
  const timeout = opts.timeout || 10000;
  let token = '';
  let expiresAt = 0; // clock ms
  let loggingIn = null; // the login in flight, shared by concurrent callers

  // raw sends one request and resolves with wx.request's answer; a request
  // that got no answer rejects with ApiError NETWORK.
  async function raw(method, path, body, headers) {
    const h = Object.assign({ 'content-type': 'application/json' }, headers || {});
    const req = { url: base + path, method: method, header: h, dataType: 'json', timeout: timeout };
    if (body !== undefined) req.data = body;
    const r = await wxCall(wx.request, req);
    if (!r.ok) throw new ApiError(0, 'NETWORK', (r.err && r.err.errMsg) || 'request:fail', undefined);
    return r.res;
  }

  // login runs wx.login and trades its code for a session token.
  function login() {
    if (loggingIn) return loggingIn;
    loggingIn = (async function () {
      try {
        const l = await wxCall(wx.login, {});
        if (!l.ok || !l.res || !l.res.code) {
          throw new ApiError(0, 'LOGIN_FAILED', (l.err && l.err.errMsg) || 'login:fail no code', undefined);
        }
        const res = await raw('POST', '/api/v1/login', { code: l.res.code });
        if (res.statusCode !== 200) throw errorOf(res, clock.now());
        token = res.data.token;
        // Renew a little early rather than send a request that will fail.
        expiresAt = clock.now() + Math.max(0, (res.data.expires_in - 30) * 1000);
        return token;
      } finally {
        loggingIn = null;
      }
    })();
    return loggingIn;
  }

  // call sends an authenticated request and resolves with the answer's
  // body (2xx) or rejects with an ApiError. A session that expired (401
  // SESSION_EXPIRED) or that the server no longer accepts (401
  // UNAUTHORIZED, e.g. its secret changed) logs in again once, and the
  // request is sent once more: a second 401 is the caller's.
  async function call(method, path, body, headers) {
    if (!token || clock.now() >= expiresAt) await login();
    for (let attempt = 0; ; attempt++) {
      const sent = token;
      const res = await raw(method, path, body, Object.assign({ Authorization: 'Bearer ' + sent }, headers || {}));
      if (res.statusCode >= 200 && res.statusCode < 300) return res.data;
      const err = errorOf(res, clock.now());
      const stale = res.statusCode === 401 && (err.code === 'SESSION_EXPIRED' || err.code === 'UNAUTHORIZED');
      if (!stale || attempt > 0) throw err;
      // Another call may have logged in meanwhile: then its token is new.
      if (token === sent) await login();
    }
  }

  return {
    login: login,
    call: call,
    // createOrder: POST /api/v1/orders. key is the Idempotency-Key: the same
    // key for every retry of one purchase.
    createOrder: function (sku, quantity, key) {
      return call('POST', '/api/v1/orders', { sku: sku, quantity: quantity }, { 'Idempotency-Key': key });
    },
    getOrder: function (outTradeNo) {
      return call('GET', '/api/v1/orders/' + encodeURIComponent(outTradeNo));
    },
    // payment: fresh wx.requestPayment parameters for a PREPAID order.
    payment: function (outTradeNo) {
      return call('POST', '/api/v1/orders/' + encodeURIComponent(outTradeNo) + '/payment');
    },
    hasSession: function () { return token !== '' && clock.now() < expiresAt; },
  };
}

module.exports = { createApi: createApi, ApiError: ApiError, header: header, wxCall: wxCall };
