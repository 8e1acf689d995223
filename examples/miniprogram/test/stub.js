'use strict';
// A wx stand-in and a fake clock for the Node tests. wx.request is answered
// by a script of wxpayd's answers, per route; wx.requestPayment by a script
// of the buyer's choices. Nothing here is a test itself.

// answer builds one wx.request answer: status, body and headers.
function answer(status, data, header) {
  return { status: status, data: data, header: header || {} };
}

// apiError builds wxpayd's error answer.
function apiError(status, code, retryAfter) {
  const h = retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) };
  return answer(status, { error: { code: code, message: code.toLowerCase() } }, h);
}

// noAnswer is a request that got no answer (wx.request's fail).
function noAnswer(errMsg) { return { fail: errMsg || 'request:fail timeout' }; }

let nonce = 0;

// order builds wxpayd's order view; a PREPAID order carries fresh payment
// parameters (a new nonce each time, as wxpayd signs each answer anew).
function order(no, state, total) {
  const o = {
    out_trade_no: no, state: state, amount: { total: total || 888, currency: 'CNY' },
    sku: 'tea', quantity: 1, description: 'tea',
  };
  if (state === 'PREPAID') {
    nonce++;
    o.payment = {
      appId: 'wx0000000000000001', timeStamp: '1700000000', nonceStr: 'nonce' + nonce,
      package: 'prepay_id=wx' + no, signType: 'RSA', paySign: 'sig' + nonce,
    };
  }
  return o;
}

// makeWx returns a wx whose request answers from routes: an object of
// "METHOD /path" → list of answers (answer(), apiError(), noAnswer(), or a
// function(req) returning one). Each request takes the next answer of its
// route; the last one repeats. pay is the list of requestPayment results:
// 'ok', 'cancel' or an errMsg. Every call is recorded in wx.calls.
function makeWx(routes, pay) {
  const queues = {};
  for (const k of Object.keys(routes)) queues[k] = routes[k].slice();
  const pays = (pay || ['ok']).slice();
  let logins = 0;
  const store = {};
  const wx = {
    calls: { login: 0, request: [], requestPayment: [] },
    login: function (o) {
      wx.calls.login++;
      logins++;
      Promise.resolve().then(function () { o.success({ code: 'code-buyer.' + logins, errMsg: 'login:ok' }); });
    },
    request: function (o) {
      const path = o.url.replace(/^https?:\/\/[^/]+/, '');
      const route = o.method + ' ' + path.replace(/^\/api\/v1\/orders\/[^/]+/, '/api/v1/orders/{no}');
      wx.calls.request.push({ route: route, url: o.url, method: o.method, header: o.header, data: o.data });
      const q = queues[route];
      if (!q || q.length === 0) throw new Error('stub: no answer scripted for ' + route);
      let a = q.length > 1 ? q.shift() : q[0];
      if (typeof a === 'function') a = a(o);
      Promise.resolve().then(function () {
        if (a.fail) o.fail({ errMsg: a.fail });
        else o.success({ statusCode: a.status, data: a.data, header: a.header, errMsg: 'request:ok' });
      });
    },
    requestPayment: function (o) {
      wx.calls.requestPayment.push(o);
      const r = pays.length > 1 ? pays.shift() : pays[0];
      Promise.resolve().then(function () {
        if (r === 'ok') o.success({ errMsg: 'requestPayment:ok' });
        else if (r === 'cancel') o.fail({ errMsg: 'requestPayment:fail cancel' });
        else o.fail({ errMsg: r });
      });
    },
    getStorageSync: function (k) { return k in store ? store[k] : ''; },
    setStorageSync: function (k, v) { store[k] = v; },
    removeStorageSync: function (k) { delete store[k]; },
  };
  // script replaces the answers of one route from now on.
  wx.script = function (route, answers) { queues[route] = answers.slice(); };
  // requests returns the recorded requests of one route.
  wx.requests = function (route) { return wx.calls.request.filter(function (r) { return r.route === route; }); };
  return wx;
}

// loginOK answers POST /api/v1/login with a new token each time.
function loginOK() {
  let n = 0;
  return function () { n++; return answer(200, { token: 'tok' + n, expires_in: 7200 }); };
}

// fakeClock starts at a fixed time; sleep advances it at once and records
// every wait.
function fakeClock() {
  let t = 1700000000000;
  const c = {
    sleeps: [],
    now: function () { return t; },
    sleep: function (ms) { c.sleeps.push(ms); t += ms; return Promise.resolve(); },
    advance: function (ms) { t += ms; },
  };
  return c;
}

module.exports = {
  answer: answer, apiError: apiError, noAnswer: noAnswer, order: order, makeWx: makeWx,
  loginOK: loginOK, fakeClock: fakeClock,
};
