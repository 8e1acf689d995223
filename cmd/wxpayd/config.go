package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/sink/relay"
)

// Every setting is an environment variable and a flag of the same name in
// lower case with dashes (WXPAYD_ORDER_TTL → -wxpayd-order-ttl); a flag
// wins over the environment. docs/configuration.md lists them; a test keeps
// the two in step.
type setting struct {
	env  string
	def  string
	help string
}

var settings = []setting{
	{"WXPAY_APPID", "", "Mini Program AppID (required)"},
	{"WXPAY_MCHID", "", "merchant id (required)"},
	{"WXPAY_APP_SECRET_FILE", "", "file holding the Mini Program AppSecret, for jscode2session (required)"},
	{"WXPAY_API", "", "merchant API: v3 or v2; empty: v2 when only APIv2 credentials are set (WXPAY_APIV2_KEY_FILE, no WXPAY_APIV3_KEY_FILE or WXPAY_MERCHANT_KEY_FILE), else v3"},
	{"WXPAY_MERCHANT_KEY_FILE", "", "merchant API private key apiclient_key.pem, PKCS#8 (required on APIv3)"},
	{"WXPAY_MERCHANT_SERIAL", "", "serial of the merchant API certificate (required on APIv3)"},
	{"WXPAY_APIV3_KEY_FILE", "", "file holding the 32-byte APIv3 key (required on APIv3)"},
	{"WXPAY_APIV2_KEY_FILE", "", "file holding the APIv2 key: required on APIv2; on APIv3 it enables /wxpay/v2/*"},
	{"WXPAY_V2_SIGN_TYPE", "MD5", "APIv2: sign type of requests and paySign, MD5 or HMAC-SHA256"},
	{"WXPAY_APICLIENT_CERT_FILE", "", "APIv2: the API client certificate apiclient_cert.pem, for refunds (with WXPAY_APICLIENT_KEY_FILE, or use WXPAY_APICLIENT_P12_FILE)"},
	{"WXPAY_APICLIENT_KEY_FILE", "", "APIv2: the API client certificate's key apiclient_key.pem"},
	{"WXPAY_APICLIENT_P12_FILE", "", "APIv2: apiclient_cert.p12 instead of the PEM pair; its password is the mch_id"},
	{"WXPAY_V2_SECAPI_BASE", "", "APIv2: base URL of /secapi/ (refunds, client certificate TLS); empty: WXPAY_API_BASE"},
	{"WXPAY_API_CA_FILE", "", "APIv2: PEM CA certificates trusted for WeChat's API hosts besides the system roots (wxpaysim's TLS listener)"},
	{"WXPAY_V2_SPBILL_CREATE_IP", "", "APIv2: spbill_create_ip of a unifiedorder whose buyer's IP is not known (a checkout without payer_client_ip; empty: 127.0.0.1)"},
	{"WXPAY_V2_REFUND_NOTIFY_URL", "", "APIv2: notify_url of refunds; empty: WXPAY_NOTIFY_URL with its last segment notify replaced by refund-notify"},
	{"WXPAY_PUBLIC_KEY_FILE", "", "WeChat Pay public key PEM (public-key mode; with WXPAY_PUBLIC_KEY_ID)"},
	{"WXPAY_PUBLIC_KEY_ID", "", "id of the WeChat Pay public key, PUB_KEY_ID_..."},
	{"WXPAY_PLATFORM_CERT_FILES", "", "comma-separated platform certificate PEM files (certificate mode)"},
	{"WXPAY_CERT_REFRESH", "", "refresh platform certificates from /v3/certificates: an interval below 12h, or 'true' for 11h"},
	{"WXPAY_API_BASE", "https://api.mch.weixin.qq.com", "WeChat Pay API base URL (point it at wxpaysim for development)"},
	{"WXPAY_LOGIN_BASE", "https://api.weixin.qq.com", "jscode2session base URL"},
	{"WXPAY_NOTIFY_URL", "", "notify_url sent with prepay and refunds, e.g. https://shop.example.com/wxpay/v3/notify (APIv2: .../wxpay/v2/notify) (required)"},
	{"WXPAYD_LISTEN", "127.0.0.1:8080", "HTTP listen address"},
	{"WXPAYD_DATA_DIR", "", "durable state directory (required; fsync'd)"},
	{"WXPAYD_ADMIN_TOKEN_FILE", "", "file holding the /admin bearer token, at least 16 bytes (required)"},
	{"WXPAYD_SESSION_SECRET_FILE", "", "file holding the session signing secret, at least 32 bytes (required)"},
	{"WXPAYD_SHOP_TOKEN_FILE", "", "file holding the shop backend's bearer token for POST /api/v1/checkouts, at least 16 bytes, not the admin token (empty: no checkout API)"},
	{"WXPAYD_ORDER_TTL", "15m", "unpaid order lifetime before it is closed and its stock released"},
	{"WXPAYD_PREPAY_QPS", "600", "per-merchant prepay calls per second (WeChat's limit; -1 = unlimited)"},
	{"WXPAYD_QUERY_AFTER", "1m", "how long after prepay an unpaid order is first queried at WeChat when no notification came (later queries back off to 10 min)"},
	{"WXPAYD_CLOSE_GRACE", "1m", "how long an order whose prepay never finished waits before it is closed at WeChat"},
	{"WXPAYD_PREPAY_TIMEOUT", "5s", "bound on one prepay call to WeChat (an unanswered one is an unknown outcome, never a failure)"},
	{"WXPAYD_CALL_TIMEOUT", "10s", "bound on one background WeChat call (query, close, refund, refund query)"},
	{"WXPAYD_KAFKA_BROKERS", "", "comma-separated Kafka brokers; empty runs an embedded Kafka-protocol broker"},
	{"WXPAYD_KAFKA_TOPIC", relay.DefaultTopic, "Kafka topic of order events"},
	{"WXPAYD_CLICKHOUSE_ADDR", "", "ClickHouse native address; when set the sink runs in this process"},
	{"WXPAYD_WEBHOOK_URL", "", "the shop's webhook endpoint, http(s); subscribed order events are POSTed to it, signed (empty: no webhooks)"},
	{"WXPAYD_WEBHOOK_SECRET_FILE", "", "file holding the webhook signing secret, at least 16 bytes (required with WXPAYD_WEBHOOK_URL)"},
	{"WXPAYD_WEBHOOK_EVENTS", "order.paid,order.refunded,order.refund_failed,order.closed", "comma-separated events delivered to the webhook (order.* types, order.paid_after_close)"},
	{"WXPAYD_WEBHOOK_TIMEOUT", "5s", "bound of one webhook attempt (at most 1m)"},
	{"WXPAYD_RSA_BACKEND", "auto", "RSA backend: auto (OpenSSL if libcrypto loads), go, openssl"},
	{"WXPAYD_OPENSSL_LIB", "", "libcrypto to load (default libcrypto.so.3)"},
	{"WXPAYD_SHARD", "01", "this node's shard: 2 characters of [0-9A-Z] at the start of every out_trade_no"},
	{"WXPAYD_CLUSTER_LISTEN", "", "cluster mode: this node's protoactor remote address host:port (empty: single node)"},
	{"WXPAYD_CLUSTER_HEALTH_PORT", "", "cluster mode: this node's automanaged health port (bound on 0.0.0.0)"},
	{"WXPAYD_CLUSTER_MEMBERS", "", "cluster mode: comma-separated health host:port of every node, this one included"},
	{"WXPAYD_CLUSTER_SHARDS", "", "cluster mode: comma-separated shards of every node, e.g. 01,02,03 (SKU owners hash over them)"},
	{"WXPAYD_CLUSTER_NAME", "wxpayd", "cluster mode: cluster name; members of another name are ignored"},
	{"WXPAYD_CLUSTER_TIMEOUT", "3s", "cluster mode: deadline of a request to another node"},
	{"WXPAYD_CLUSTER_RECONCILE_AFTER", "2m", "cluster mode: age after which a stock hold for another node's order is checked against the order"},
	{"WXPAYD_CLUSTER_FORM_TIMEOUT", "30s", "cluster mode: /readyz answers 503 until every shard has joined, or for this long after start"},
	{"WXPAYD_TRUSTED_PROXIES", "", "comma-separated IPs or CIDR prefixes of the reverse proxies / load balancers in front of wxpayd: from them the buyer's IP (sent to WeChat with each prepay) is read from X-Forwarded-For (empty: the TCP peer is the buyer)"},
	{"WXPAYD_CORS_ORIGINS", "", "comma-separated browser origins allowed to call /api/v1/ across origins, e.g. wxpaysim's Mini Program page http://127.0.0.1:9090 (empty: no CORS)"},
	{"WXPAYD_RECONCILE_AT", "10:30", "Beijing time of day (HH:MM) after which the previous day's WeChat bill is reconciled"},
	{"WXPAYD_RECONCILE_CATCHUP_DAYS", "7", "days back (1 to 90) the reconciliation catches up on start and keeps reconciled"},
	{"WXPAYD_LOG_LEVEL", "info", "log level: debug, info, warn, error"},
}

func flagName(env string) string { return strings.ToLower(strings.ReplaceAll(env, "_", "-")) }

// values holds every setting by its variable name, resolved from flags,
// the environment and the defaults.
type values map[string]string

// load resolves every setting. Its errors are the command line's: an
// unknown or malformed flag (the flag package has printed it and the
// usage), or an argument, since wxpayd takes none; -h gives flag.ErrHelp.
// Values are not checked here but where they are used (newApp).
func load(args []string, getenv func(string) string) (values, error) {
	fs := flag.NewFlagSet("wxpayd", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	ptrs := map[string]*string{}
	for _, s := range settings {
		ptrs[s.env] = fs.String(flagName(s.env), "", fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def))
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	v := values{}
	for _, s := range settings {
		switch {
		case *ptrs[s.env] != "":
			v[s.env] = *ptrs[s.env]
		case getenv(s.env) != "":
			v[s.env] = getenv(s.env)
		default:
			v[s.env] = s.def
		}
	}
	return v, nil
}

func (v values) required(names ...string) error {
	var missing []string
	for _, n := range names {
		if v[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing required setting(s): %s", strings.Join(missing, ", "))
	}
	return nil
}

func (v values) duration(name string) (time.Duration, error) {
	d, err := time.ParseDuration(v[name])
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration", name, v[name])
	}
	return d, nil
}

func (v values) integer(name string) (int, error) {
	n, err := strconv.Atoi(v[name])
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an integer", name, v[name])
	}
	return n, nil
}

// prefixes reads a comma-separated list of IP addresses and CIDR prefixes.
func (v values) prefixes(name string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range v.list(name) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, cfgErr("%s: %q is not an IP address or a CIDR prefix", name, s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (v values) list(name string) []string {
	var out []string
	for _, p := range strings.Split(v[name], ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// secret reads a secret file. Errors name the setting and the path, never
// the content; one trailing newline is dropped (editors add one).
func (v values) secret(name string, minLen int) ([]byte, error) {
	path := v[name]
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < minLen {
		return nil, fmt.Errorf("%s: %s holds %d bytes, need at least %d", name, path, len(b), minLen)
	}
	return b, nil
}
