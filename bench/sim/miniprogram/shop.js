// The shop's two pages (examples/miniprogram/pages/sale and pages/order),
// rendered in HTML around the example's own modules: like those pages,
// this file only calls lib/checkout.js and shows what lib/present.js says.
//
// Query parameters: api (wxpayd, default http://127.0.0.1:8080), user (the
// buyer, default a random one), sku (default tea), quantity (default 1),
// order (open the order page of an out_trade_no).
//
// window.mpShop exposes, for tests and the curious: timings (ms since the
// page started: login, loggedIn, buy, paid), outcome (the last one).
(async function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const q = new URLSearchParams(location.search);
  const cfg = {
    api: q.get('api') || 'http://127.0.0.1:8080',
    user: q.get('user') || 'buyer' + Math.floor(Math.random() * 1e6),
    sku: q.get('sku') || 'tea',
    quantity: Number(q.get('quantity') || 1),
  };
  const shop = { timings: {}, outcome: null };
  window.mpShop = shop;
  const mark = (k) => { shop.timings[k] = Math.round(performance.now() * 10) / 10; };

  $('user').textContent = cfg.user;
  $('api').textContent = cfg.api;
  $('sku').textContent = cfg.sku;
  $('sku-title').textContent = cfg.sku;
  $('quantity').textContent = String(cfg.quantity);
  wx.setUser(cfg.user);
  wx.onSession = (s) => { $('openid').textContent = s.openid; };

  await mp.load(['backoff.js', 'api.js', 'checkout.js', 'present.js']);
  const { createApi } = mp.require('./api.js');
  const { createCheckout } = mp.require('./checkout.js');
  const present = mp.require('./present.js');

  const api = createApi({ wx: wx, baseURL: cfg.api });
  let onPage = 'sale';
  const checkout = createCheckout({
    api: api, wx: wx,
    onStep: (s) => { $(onPage === 'sale' ? 'line' : 'order-line').textContent = present.progress(s); },
  });

  // Navigation between the two "pages", as wx.navigateTo / navigateBack.
  function navigate(page) {
    onPage = page;
    $('page-sale').hidden = page !== 'sale';
    $('page-order').hidden = page !== 'order';
    $('nav-back').hidden = page === 'sale';
    $('nav-title').textContent = page === 'sale' ? 'Flash sale' : 'Order';
  }
  $('nav-back').onclick = () => navigate('sale');

  let current = null; // the order on the order page

  function showResult(prefix, view) {
    const box = $(prefix + 'result');
    box.hidden = false;
    box.dataset.state = view.state;
    $(prefix + 'result-title').textContent = view.title;
    $(prefix + 'result-detail').textContent = view.detail;
  }

  function showOrder(order, view) {
    current = order;
    $('order-no').textContent = order.out_trade_no;
    $('order-amount').textContent = present.yuan(order.amount.total) + ' · ' + order.description;
    $('order-state').textContent = order.state;
    $('order-state').dataset.state = order.state;
    $('pay-again').hidden = !view.payAgain;
    showResult('order-', view);
  }

  // show renders an outcome where the Mini Program's pages would: the sale
  // page for answers without an order, the order page otherwise.
  function show(out) {
    shop.outcome = out;
    const view = present.describe(out);
    $('line').textContent = '';
    $('order-line').textContent = '';
    if (out.status === 'paid') mark('paid');
    if (out.order) {
      showOrder(out.order, view);
      navigate('order');
    } else {
      showResult('', view);
      navigate('sale');
    }
    return view;
  }

  // A pending payment keeps being confirmed while the page is open.
  async function settle(out) {
    for (let i = 0; i < 10 && out.status === 'pending'; i++) {
      show(out);
      out = await checkout.confirm(out.order.out_trade_no, out.order);
    }
    show(out);
  }

  $('buy').onclick = async () => {
    $('buy').disabled = true;
    $('result').hidden = true;
    mark('buy');
    try {
      await settle(await checkout.buy(cfg.sku, cfg.quantity));
    } finally {
      $('buy').disabled = false;
    }
  };
  $('pay-again').onclick = async () => {
    $('pay-again').disabled = true;
    try {
      await settle(await checkout.payAgain(current.out_trade_no));
    } finally {
      $('pay-again').disabled = false;
    }
  };
  $('refresh').onclick = async () => { if (current) show(await checkout.refresh(current.out_trade_no)); };

  // onLaunch: log in at once, as app.js does.
  mark('login');
  try {
    await api.login();
    mark('loggedIn');
    $('login-state').textContent = 'logged in';
    $('login-state').dataset.state = 'ok';
  } catch (e) {
    $('login-state').textContent = 'login failed: ' + e.message + ' (buying logs in again)';
    $('login-state').dataset.state = 'failed';
  }
  $('buy').disabled = false;
  if (q.get('order')) show(await checkout.refresh(q.get('order')));
})().catch((e) => {
  const el = document.getElementById('login-state');
  el.textContent = 'page error: ' + e.message;
  el.dataset.state = 'failed';
});
