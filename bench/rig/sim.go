package rig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envFile is where `wxpaysim keygen` writes the WXPAY_* settings of wxpayd
// (bench/sim's FileEnv; rig does not import bench/sim, whose imports would
// make an import cycle for the tests of a package bench/sim uses).
const envFile = "wxpay.env"

// simReady bounds the wait for a started wxpaysim's /sim/v1/health.
const simReady = 60 * time.Second

// sessionSecret is every WxpaydEnv's session secret: nodes of one cluster
// must share it.
const sessionSecret = "rig-session-secret-0123456789abcdef0123"

// Sim is wxpaysim serving a fresh development identity on 127.0.0.1.
type Sim struct {
	*Process
	Addr string   // host:port it serves
	URL  string   // "http://" + Addr
	Keys string   // the identity's directory
	Env  []string // the identity's wxpay.env: WXPAY_* that make wxpayd its merchant
}

// StartSim writes an identity for a merchant on WeChat Pay's API api ("v3"
// or "v2") whose wxpayd listens on wxpayd (host:port) into dir/keys with
// `wxpaysim keygen`, starts `wxpaysim serve` on a free port with serve's
// flags and its log in dir/wxpaysim.log, and waits up to a minute for
// /sim/v1/health. WeChat's notifications go to wxpayd's /wxpay/v3/notify
// or /wxpay/v2/notify; for "v2" the simulator also serves APIv2's TLS
// listener (/secapi/) on a free port.
func StartSim(t testing.TB, wxpaysim, dir, api, wxpayd string, serve ...string) *Sim {
	t.Helper()
	s := &Sim{Addr: FreeAddr(t), Keys: filepath.Join(dir, "keys")}
	s.URL = "http://" + s.Addr
	args := []string{"keygen", "--dir", s.Keys, "--sim-addr", s.Addr, "--notify-url", "http://" + wxpayd + "/wxpay/" + api + "/notify"}
	switch api {
	case "v3":
	case "v2":
		tls := FreeAddr(t)
		args = append(args, "--api", "v2", "--sim-tls-addr", tls)
		serve = append([]string{"--tls-listen", tls}, serve...)
	default:
		t.Fatalf("rig.StartSim: API %q is neither v3 nor v2", api)
	}
	cmd := exec.Command(wxpaysim, args...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wxpaysim %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s.Env = ReadEnv(t, filepath.Join(s.Keys, envFile))
	s.Process = Start(t, Cmd{Path: wxpaysim, Log: filepath.Join(dir, "wxpaysim.log"),
		Args:  append([]string{"serve", "--keys-dir", s.Keys, "--listen", s.Addr}, serve...),
		Ready: s.URL + "/sim/v1/health", ReadyWithin: simReady})
	return s
}

// WxpaydEnv returns the settings of a wxpayd that is the simulator's
// merchant: the identity's Env; WXPAYD_LISTEN=listen; WXPAYD_DATA_DIR
// dir/data; WXPAYD_ADMIN_TOKEN_FILE and WXPAYD_SESSION_SECRET_FILE, files
// dir/admin_token (adminToken) and dir/session_secret (the same secret for
// every call); then extra. dir is made if it does not exist.
func (s *Sim) WxpaydEnv(t testing.TB, dir, listen, adminToken string, extra ...string) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(append([]string{}, s.Env...),
		"WXPAYD_LISTEN="+listen, "WXPAYD_DATA_DIR="+filepath.Join(dir, "data"),
		"WXPAYD_ADMIN_TOKEN_FILE="+WriteSecret(t, dir, "admin_token", adminToken),
		"WXPAYD_SESSION_SECRET_FILE="+WriteSecret(t, dir, "session_secret", sessionSecret))
	return append(env, extra...)
}
