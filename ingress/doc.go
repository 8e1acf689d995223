// Package ingress is wxpayd's HTTP front: a fasthttp server that checks
// every request, turns it into an actor message, and turns the actor's
// answer into HTTP.
//
// Buyers (the Mini Program) log in with a wx.login code and get a signed,
// stateless session token; they create orders (stock reserved by the SKU's
// actor, WeChat's prepay called through a per-merchant budget, payment
// parameters signed) and read them. Admins set the catalogue and refund.
// WeChat Pay posts payment and refund notifications, which are verified,
// decrypted and applied by the order's actor before a 2xx is sent.
//
// Prepay and notifications have separate admission limits, so a flood of
// buyers cannot delay acknowledging money already taken. Every limit, when
// reached, answers at once (429 or 503) instead of queueing.
//
// Errors map to answers in one table (errors.go). Request bodies are read
// from fasthttp's buffers only during the handler: whatever reaches an actor
// is copied first.
package ingress
