// Package simjudge has wechatpay-go and gopay judge wxpaysim (bench/sim): the
// official SDK's client must accept every answer's signature in both signing
// modes, its notification handler must verify and decrypt every genuine
// notification and reject the tampered and stale copies, and gopay must
// verify the APIv2 answers and notifications. Only tests live here.
package simjudge
