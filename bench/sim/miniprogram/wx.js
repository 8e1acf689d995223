// WeChat's Mini Program client, simulated in a browser by wxpaysim.
//
// window.wx offers what the example's modules use, with WeChat's callback
// style (success / fail / complete) and errMsg strings:
//   wx.login           a code from POST /sim/v1/login for the page's buyer
//   wx.request         fetch to wxpayd (another origin: CORS)
//   wx.requestPayment  WeChat's client: the base library's parameter check,
//                      then POST /sim/v1/requestPayment (paySign verified
//                      with the merchant's key, the prepay looked up), the
//                      pay sheet, and on "pay" POST /sim/v1/pay
//   wx.getStorageSync / setStorageSync / removeStorageSync
//                      localStorage, one namespace per buyer
// window.mp loads CommonJS modules (module.exports / require) from lib/.
(function () {
  'use strict';

  const session = { user: '', openid: '' };

  function done(o, ok, res) {
    try {
      if (ok && o.success) o.success(res);
      if (!ok && o.fail) o.fail(res);
    } finally {
      if (o.complete) o.complete(res);
    }
  }
  const succeed = (o, res) => setTimeout(() => done(o, true, res), 0);
  const failWith = (o, errMsg) => setTimeout(() => done(o, false, { errMsg: errMsg }), 0);

  // simPost posts JSON to this simulator and resolves with { status, body }.
  async function simPost(path, body) {
    const r = await fetch(path, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    let b = {};
    try { b = await r.json(); } catch (e) { /* not JSON: keep {} */ }
    return { status: r.status, body: b };
  }

  const wx = {};

  wx.login = function (o) {
    o = o || {};
    simPost('/sim/v1/login', { user: session.user }).then(({ status, body }) => {
      if (status !== 200) return failWith(o, 'login:fail ' + (body.message || status));
      session.openid = body.openid;
      wx.onSession(session);
      succeed(o, { code: body.code, errMsg: 'login:ok' });
    }, (e) => failWith(o, 'login:fail ' + e.message));
  };

  wx.request = function (o) {
    const method = String(o.method || 'GET').toUpperCase();
    let url = o.url;
    let body;
    if (o.data !== undefined && o.data !== null) {
      if (method === 'GET') url += (url.indexOf('?') >= 0 ? '&' : '?') + new URLSearchParams(o.data).toString();
      else body = typeof o.data === 'string' ? o.data : JSON.stringify(o.data);
    }
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), o.timeout || 60000);
    fetch(url, { method: method, headers: o.header || {}, body: body, signal: ctrl.signal, mode: 'cors', credentials: 'omit' })
      .then(async (r) => {
        const text = await r.text();
        let data = text;
        if (o.dataType !== 'text') {
          try { data = JSON.parse(text); } catch (e) { /* WeChat leaves it a string */ }
        }
        const header = {};
        r.headers.forEach((v, k) => { header[k] = v; });
        clearTimeout(timer);
        succeed(o, { statusCode: r.status, data: data, header: header, errMsg: 'request:ok' });
      })
      .catch((e) => {
        clearTimeout(timer);
        failWith(o, 'request:fail ' + (e.name === 'AbortError' ? 'timeout' : e.message));
      });
  };

  // paramError is the base library's type check of wx.requestPayment's
  // parameters, in its words.
  function paramError(o) {
    let msg = '';
    for (const k of ['timeStamp', 'nonceStr', 'package', 'paySign']) {
      const v = o[k];
      if (typeof v !== 'string') {
        const got = v === undefined ? 'Undefined' : v === null ? 'Null' : (typeof v)[0].toUpperCase() + (typeof v).slice(1);
        msg += 'parameter.' + k + ' should be String instead of ' + got + ';';
      }
    }
    return msg;
  }

  wx.requestPayment = function (o) {
    o = o || {};
    const perr = paramError(o);
    if (perr) return failWith(o, 'requestPayment:fail parameter error: ' + perr);
    const params = {
      timeStamp: o.timeStamp, nonceStr: o.nonceStr, package: o.package,
      signType: o.signType || 'MD5', // the documented default
      paySign: o.paySign, openid: session.openid,
    };
    simPost('/sim/v1/requestPayment', params).then(async ({ status, body }) => {
      if (status !== 200) return failWith(o, 'requestPayment:fail ' + (body.message || body.code || status));
      const choice = await sheet.show(body);
      if (choice !== 'pay') return failWith(o, 'requestPayment:fail cancel');
      const paid = await simPost('/sim/v1/pay', { prepay_id: body.prepay_id, openid: session.openid });
      if (paid.status !== 201) return failWith(o, 'requestPayment:fail ' + (paid.body.message || paid.body.code || paid.status));
      succeed(o, { errMsg: 'requestPayment:ok' });
    }, (e) => failWith(o, 'requestPayment:fail ' + e.message));
  };

  const storeKey = (k) => 'mpsim:' + session.user + ':' + k;
  wx.getStorageSync = function (k) {
    const v = localStorage.getItem(storeKey(k));
    return v === null ? '' : JSON.parse(v);
  };
  wx.setStorageSync = function (k, v) { localStorage.setItem(storeKey(k), JSON.stringify(v)); };
  wx.removeStorageSync = function (k) { localStorage.removeItem(storeKey(k)); };

  // Not WeChat's: the page sets its buyer and hears of the login.
  wx.setUser = function (user) { session.user = user; session.openid = ''; };
  wx.onSession = function () {};

  // The pay sheet: resolves with 'pay' or 'cancel'.
  const sheet = {
    show(info) {
      const el = (id) => document.getElementById(id);
      const fen = Number(info.total) || 0;
      el('wx-sheet-merchant').textContent = 'Merchant ' + info.mchid;
      el('wx-sheet-desc').textContent = info.description;
      el('wx-sheet-amount').textContent = '¥' + Math.floor(fen / 100) + '.' + String(fen % 100).padStart(2, '0');
      el('wx-sheet').hidden = false;
      return new Promise((resolve) => {
        const close = (choice) => () => {
          el('wx-sheet').hidden = true;
          el('wx-sheet-pay').onclick = null;
          el('wx-sheet-cancel').onclick = null;
          resolve(choice);
        };
        el('wx-sheet-pay').onclick = close('pay');
        el('wx-sheet-cancel').onclick = close('cancel');
      });
    },
  };

  // mp: a CommonJS loader for the example's modules, served unchanged.
  const mp = {
    sources: {},
    cache: {},
    // load fetches lib/<name> for each name, before any require.
    async load(names) {
      await Promise.all(names.map(async (n) => {
        const r = await fetch('lib/' + n);
        if (!r.ok) throw new Error('lib/' + n + ': ' + r.status);
        mp.sources[n] = await r.text();
      }));
    },
    // require('./api.js') returns lib/api.js's module.exports.
    require(p) {
      const name = String(p).replace(/^\.\//, '');
      if (mp.cache[name]) return mp.cache[name].exports;
      const src = mp.sources[name];
      if (src === undefined) throw new Error('module not loaded: ' + p);
      const module = { exports: {} };
      mp.cache[name] = module;
      // eslint-disable-next-line no-new-func
      new Function('module', 'exports', 'require', src + '\n//# sourceURL=lib/' + name)(module, module.exports, mp.require);
      return module.exports;
    },
  };

  window.wx = wx;
  window.mp = mp;
})();
