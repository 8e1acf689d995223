// The flash-sale page: one button. Buying, retrying, paying and confirming
// are lib/checkout.js; what the buyer reads is lib/present.js.
const config = require('../../config.js');
const { createCheckout } = require('../../lib/checkout.js');
const present = require('../../lib/present.js');

Page({
  data: { title: config.title, sku: config.sku, quantity: config.quantity, busy: false, line: '', result: null },

  onLoad() {
    this.checkout = createCheckout({
      api: getApp().api,
      wx: wx,
      onStep: (s) => this.setData({ line: present.progress(s) }),
    });
  },

  async onBuy() {
    if (this.data.busy) return;
    this.setData({ busy: true, line: '', result: null });
    const out = await this.checkout.buy(config.sku, config.quantity);
    this.setData({ busy: false, line: '', result: present.describe(out) });
    // An order exists: its page shows it (paid, being confirmed, or waiting
    // for "pay again" after a cancel).
    if (out.order) {
      wx.navigateTo({ url: '/pages/order/order?no=' + out.order.out_trade_no + '&status=' + out.status });
    }
  },
});
