// One order, as wxpayd has it. After a cancel the buyer pays it again from
// here (fresh parameters from POST /api/v1/orders/{no}/payment); a payment
// still being confirmed keeps being read. All of it is lib/checkout.js.
const { createCheckout } = require('../../lib/checkout.js');
const present = require('../../lib/present.js');

Page({
  data: { no: '', order: null, amount: '', view: null, busy: false, line: '' },

  onLoad(query) {
    this.setData({ no: query.no });
    this.checkout = createCheckout({
      api: getApp().api,
      wx: wx,
      onStep: (s) => this.setData({ line: present.progress(s) }),
    });
    this.load(query.status === 'pending');
  },

  onPullDownRefresh() {
    this.load(false).then(() => wx.stopPullDownRefresh());
  },

  // load reads the order; confirming, it keeps reading until the payment
  // is confirmed or the deadline passes.
  async load(confirming) {
    const out = confirming ? await this.checkout.confirm(this.data.no) : await this.checkout.refresh(this.data.no);
    this.show(out);
  },

  async onPayAgain() {
    if (this.data.busy) return;
    this.setData({ busy: true });
    const out = await this.checkout.payAgain(this.data.no);
    this.setData({ busy: false });
    this.show(out);
  },

  show(out) {
    const order = out.order || this.data.order;
    this.setData({
      order: order,
      amount: order ? present.yuan(order.amount.total) : '',
      view: present.describe(out),
      line: '',
    });
  },
});
