'use strict';
// What the buyer reads: one outcome of checkout.js (or one step in
// progress) turned into a title, a detail line and the actions offered.
// Shared by the Mini Program's pages and wxpaysim's browser simulator so
// both say the same thing.

// yuan formats an amount in fen: 888 → "¥8.88".
function yuan(fen) {
  const n = Number(fen) || 0;
  return '¥' + Math.floor(n / 100) + '.' + String(n % 100).padStart(2, '0');
}

// describe returns { state, title, detail, payAgain } for an outcome: state
// is a stable word for styling and tests, payAgain whether to offer "Pay
// again" (the order waits for payment).
function describe(outcome) {
  const order = outcome.order;
  const no = order ? order.out_trade_no : '';
  switch (outcome.status) {
    case 'paid':
      return { state: 'paid', title: 'Paid', detail: 'Order ' + no + ' is paid: ' + yuan(order.amount.total) + '.', payAgain: false };
    case 'pending':
      return { state: 'pending', title: 'Payment being confirmed', detail: 'WeChat Pay accepted it; the shop has not confirmed it yet. This page keeps checking.', payAgain: false };
    case 'cancelled':
      return { state: 'cancelled', title: 'Payment cancelled', detail: 'Order ' + no + ' is kept for you until it expires: pay it from the order page.', payAgain: true };
    case 'pay_failed':
      return { state: 'pay_failed', title: 'Payment failed', detail: outcome.message, payAgain: true };
    case 'sold_out':
      return { state: 'sold_out', title: 'Sold out', detail: 'Every unit is taken. Unpaid orders give theirs back when they expire.', payAgain: false };
    case 'limit_exceeded':
      return { state: 'limit_exceeded', title: 'Limit reached', detail: 'You already bought as many as one buyer may.', payAgain: false };
    case 'closed':
      return { state: 'closed', title: 'Order closed', detail: 'Order ' + no + ' expired unpaid.', payAgain: false };
    case 'failed':
      return { state: 'failed', title: 'Order failed', detail: 'WeChat Pay refused order ' + no + '; nothing was charged.', payAgain: false };
    case 'unpaid':
      return { state: 'unpaid', title: 'Awaiting payment', detail: 'Order ' + no + ': ' + yuan(order.amount.total) + '.', payAgain: order.state === 'PREPAID' };
    default: {
      const e = outcome.error || {};
      return {
        state: 'error',
        title: outcome.retryable ? 'The shop is busy' : 'Something went wrong',
        detail: (e.code ? e.code + ': ' : '') + (e.detail || e.message || 'unknown error') + (outcome.retryable ? ' (tap again: your purchase is not lost)' : ''),
        payAgain: !!(outcome.order && outcome.order.state === 'PREPAID'),
      };
    }
  }
}

// progress returns the line shown while a flow runs, for one onStep event.
function progress(s) {
  switch (s.step) {
    case 'ordering': return 'Placing your order…';
    case 'waiting': return 'The shop is busy (' + (s.error ? s.error.code : '') + '): trying again in ' + Math.ceil(s.ms / 1000) + ' s…';
    case 'paying': return 'Waiting for WeChat Pay…';
    case 'confirming': return 'Confirming the payment with the shop…';
    default: return '';
  }
}

module.exports = { describe: describe, progress: progress, yuan: yuan };
