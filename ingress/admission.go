package ingress

// lane bounds the requests of one kind in flight. acquire never waits.
type lane struct{ slots chan struct{} }

func newLane(n int) *lane { return &lane{slots: make(chan struct{}, n)} }

func (l *lane) acquire() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l *lane) release() { <-l.slots }

func (l *lane) inUse() int { return len(l.slots) }
