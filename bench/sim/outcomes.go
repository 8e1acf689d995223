package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Refund outcomes. After Config.RefundDelay a refund ends in one of the
// states WeChat documents: SUCCESS (the money reached the buyer), CLOSED (the
// refund failed; the amount is refundable again) or ABNORMAL (e.g. the
// buyer's card is frozen; it stays ABNORMAL until the merchant calls
// apply-abnormal-refund). A --refund-outcomes SPEC2 such as
// success=0.9,closed=0.05,abnormal=0.05 gives the probabilities.

// DefaultRefundOutcomes is the SPEC2 used when none is given.
const DefaultRefundOutcomes = "success=1"

type refundOutcome int

const (
	outcomeSuccess refundOutcome = iota
	outcomeClosed
	outcomeAbnormal
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "closed", "abnormal"}

var outcomeStatus = [numOutcomes]string{
	wxpay.RefundStatusSuccess, wxpay.RefundStatusClosed, wxpay.RefundStatusAbnormal,
}

// RefundOutcomes is a parsed --refund-outcomes SPEC2. It is immutable, so
// safe for concurrent use.
type RefundOutcomes struct {
	p [numOutcomes]float64
}

// ParseRefundOutcomes parses a SPEC2 of success, closed and abnormal rates
// ("" means DefaultRefundOutcomes). A missing success takes what the others
// leave; when success is given the three must add up to 1. The error wraps
// ErrSpec.
func ParseRefundOutcomes(spec string) (*RefundOutcomes, error) {
	if strings.TrimSpace(spec) == "" {
		spec = DefaultRefundOutcomes
	}
	var o RefundOutcomes
	var set [numOutcomes]bool
	err := parseItems(spec, func(key string, rate float64) error {
		k := lookupName[refundOutcome](outcomeNames[:], key)
		switch {
		case k < 0:
			return fmt.Errorf("%q: unknown outcome, want one of %s", key, strings.Join(outcomeNames[:], ", "))
		case set[k]:
			return fmt.Errorf("%q given twice", key)
		}
		set[k], o.p[k] = true, rate
		return nil
	})
	if err != nil {
		return nil, err
	}
	rest := 1 - o.p[outcomeClosed] - o.p[outcomeAbnormal]
	switch {
	case !set[outcomeSuccess] && rest < -1e-9:
		return nil, fmt.Errorf("%w: %s: closed and abnormal add up to more than 1", ErrSpec, spec)
	case !set[outcomeSuccess]:
		o.p[outcomeSuccess] = max(rest, 0)
	case math.Abs(o.p[outcomeSuccess]-rest) > 1e-9:
		return nil, fmt.Errorf("%w: %s: the rates add up to %g, want 1", ErrSpec, spec,
			o.p[outcomeSuccess]+o.p[outcomeClosed]+o.p[outcomeAbnormal])
	}
	return &o, nil
}

// String returns the SPEC2 in canonical form: success first, zero rates
// other than success left out.
func (o *RefundOutcomes) String() string {
	if o == nil {
		return DefaultRefundOutcomes
	}
	var b strings.Builder
	for k := range numOutcomes {
		if k != outcomeSuccess && o.p[k] == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(outcomeNames[k] + "=" + strconv.FormatFloat(o.p[k], 'g', -1, 64))
	}
	return b.String()
}

// drawOutcome draws the final status of a new refund. With success=1 it
// takes no random number.
func (s *Server) drawOutcome() string {
	o := s.outcomes.Load()
	if o.p[outcomeSuccess] >= 1 {
		return wxpay.RefundStatusSuccess
	}
	u := s.randFloat()
	acc := 0.0
	for k, p := range o.p {
		acc += p
		if u < acc {
			return outcomeStatus[k]
		}
	}
	return wxpay.RefundStatusSuccess // rounding: the rates add up to 1 within 1e-9
}
