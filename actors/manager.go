package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// manager routes order messages to one actor per out_trade_no in its
// partition, spawning on first message and passivating idle actors.
//
// Passivation is the dangerous part: a message forwarded to an actor that
// is stopping would be lost. So every user message reaches a child only
// through its manager, which counts what it forwarded. A periodic sweep
// sends children idle for Config.Idle an idleCheck with that count; a child
// that processed exactly that many messages and has no call in flight asks
// to stop, and the manager stops it only if its count has not moved since
// (nothing is in the child's mailbox). Messages that arrive while it stops
// are buffered and delivered to a fresh actor once Terminated arrives.
// (protoactor's ReceiveTimeout is not used: at this version it fires once
// and races with message processing.)
//
// Children are spawned from the root context and watched: a parent's child
// set would otherwise keep every stopped child's PID alive.
//
// Children are kept in a list ordered by when they were last touched (a
// message forwarded, or an idle check sent), so a sweep visits only the
// children idle for Config.Idle, not all of them: sweeps run often and each
// passivates a small slice, instead of a burst of every actor idle since
// the last sweep that stalls the managers' mailboxes.
type manager struct {
	sys      *System
	children map[string]*child
	byID     map[string]string // child PID id → key
	peak     int               // most children since the maps were last rebuilt
	idle     idleList
}

type child struct {
	pid        *actor.PID
	forwarded  uint64
	touchMs    int64 // when a message was last forwarded or an idle check sent
	stopping   bool
	buf        []OrderMessage // arrived while stopping: for the next actor
	prev, next *child         // in manager.idle
}

// idleList is a doubly linked list of children, least recently touched
// first.
type idleList struct{ front, back *child }

func (l *idleList) remove(c *child) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.front == c {
		l.front = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if l.back == c {
		l.back = c.prev
	}
	c.prev, c.next = nil, nil
}

func (l *idleList) pushBack(c *child) {
	c.prev, c.next = l.back, nil
	if l.back != nil {
		l.back.next = c
	} else {
		l.front = c
	}
	l.back = c
}

// touch marks c used at nowMs and moves it to the back.
func (l *idleList) touch(c *child, nowMs int64) {
	c.touchMs = nowMs
	if l.back != c {
		l.remove(c)
		l.pushBack(c)
	}
}

// sweep asks the manager to check its children for idleness.
type sweep struct{ nowMs int64 }

// idleCheck asks a child whether it is idle after n messages.
type idleCheck struct{ n uint64 }

// passivate is a child's request to stop after processing n messages.
type passivate struct {
	key string
	pid *actor.PID
	n   uint64
}

// drain asks the manager to stop all its children, each after the
// messages already in its mailbox.
type drain struct{}

func newManager(s *System) actor.Actor {
	return &manager{sys: s, children: map[string]*child{}, byID: map[string]string{}}
}

func (m *manager) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case OrderMessage:
		key := msg.orderKey()
		c := m.children[key]
		if c == nil {
			c = m.spawn(ctx, key)
		}
		if c.stopping {
			c.buf = append(c.buf, msg)
			return
		}
		c.forwarded++
		m.idle.touch(c, time.Now().UnixMilli())
		ctx.Forward(c.pid)
	case *sweep:
		m.shrink()
		idle := m.sys.cfg.Idle.Milliseconds()
		for c := m.idle.front; c != nil && msg.nowMs-c.touchMs >= idle; c = m.idle.front {
			if !c.stopping {
				ctx.Send(c.pid, &idleCheck{n: c.forwarded})
			}
			// Checked now: visited again only after another idle period.
			m.idle.touch(c, msg.nowMs)
		}
	case *passivate:
		c := m.children[msg.key]
		if c == nil || c.stopping || !c.pid.Equal(msg.pid) || c.forwarded != msg.n {
			return // busy again: it will ask later
		}
		c.stopping = true
		ctx.Stop(c.pid)
	case *actor.Terminated:
		key, ok := m.byID[msg.Who.Id]
		if !ok {
			return
		}
		delete(m.byID, msg.Who.Id)
		c := m.children[key]
		delete(m.children, key)
		if c != nil {
			m.idle.remove(c)
		}
		m.sys.metrics.LiveOrders.Add(-1)
		m.sys.metrics.Passivated.Add(1)
		if len(m.children) == 0 {
			m.shrink() // the last one left: drop the tables' buckets now
		}
		if c != nil && len(c.buf) > 0 {
			nc := m.spawn(ctx, key)
			for _, msg := range c.buf {
				nc.forwarded++
				m.idle.touch(nc, time.Now().UnixMilli())
				ctx.Send(nc.pid, msg) // a System.Request's reply channel travels in the message
			}
		}
	case *drain:
		for _, c := range m.children {
			_ = ctx.PoisonFuture(c.pid).Wait()
		}
		ctx.Respond(true)
	}
}

// shrink rebuilds the maps once they hold a quarter of their peak: Go maps
// keep their buckets after deletes, so without this a burst of 100k orders
// would keep its routing tables after every actor passivated.
func (m *manager) shrink() {
	if n := len(m.children); n > m.peak {
		m.peak = n
	}
	if m.peak < 1024 || len(m.children) > m.peak/4 {
		return
	}
	children := make(map[string]*child, len(m.children))
	for k, c := range m.children {
		children[k] = c
	}
	byID := make(map[string]string, len(m.byID))
	for k, v := range m.byID {
		byID[k] = v
	}
	m.children, m.byID, m.peak = children, byID, len(children)
}

func (m *manager) spawn(ctx actor.Context, key string) *child {
	self := ctx.Self()
	props := m.sys.props(func() actor.Actor { return newOrderActor(m.sys, key, self) })
	pid := ctx.ActorSystem().Root.Spawn(props)
	ctx.Watch(pid)
	c := &child{pid: pid, touchMs: time.Now().UnixMilli()}
	m.idle.pushBack(c)
	m.children[key] = c
	m.byID[pid.Id] = key
	if len(m.children) > m.peak {
		m.peak = len(m.children)
	}
	m.sys.metrics.LiveOrders.Add(1)
	return c
}
