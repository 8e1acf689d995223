// The app logs the buyer in at launch and keeps one API client; pages make
// their own checkout (lib/checkout.js) over it. No logic here: it is all in
// lib/, which runs unchanged in Node tests and in wxpaysim's simulator.
const config = require('./config.js');
const { createApi } = require('./lib/api.js');

App({
  onLaunch() {
    this.api = createApi({ wx: wx, baseURL: config.apiBase });
    // Early, so that the first tap is quick; a failure here is retried by
    // the first call that needs a session.
    this.api.login().catch(() => {});
  },
});
