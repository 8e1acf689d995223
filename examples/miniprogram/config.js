// Where the shop's server is and what the sale page sells. A Mini Program
// may only call HTTPS domains registered in its admin console
// (mp.weixin.qq.com → 开发管理 → 开发设置 → 服务器域名, "request合法域名");
// http://127.0.0.1:8080 works in WeChat DevTools with "不校验合法域名"
// (project.config.json: urlCheck false), not on a phone. See README.md.
module.exports = {
  apiBase: 'http://127.0.0.1:8080',
  sku: 'tea',
  title: 'Tea, flash sale',
  quantity: 1,
};
