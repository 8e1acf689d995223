package actors

import "testing"

func listKeys(l *idleList, names map[*child]string) []string {
	var out []string
	for c := l.front; c != nil; c = c.next {
		out = append(out, names[c])
	}
	return out
}

func TestIdleListKeepsLeastRecentlyTouchedFirst(t *testing.T) {
	var l idleList
	a, b, c := &child{}, &child{}, &child{}
	names := map[*child]string{a: "a", b: "b", c: "c"}
	for i, ch := range []*child{a, b, c} {
		ch.touchMs = int64(i)
		l.pushBack(ch)
	}
	check := func(want ...string) {
		t.Helper()
		got := listKeys(&l, names)
		if len(got) != len(want) {
			t.Fatalf("list %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("list %v, want %v", got, want)
			}
		}
		// The back link agrees with the forward walk.
		if len(want) > 0 && names[l.back] != want[len(want)-1] {
			t.Fatalf("back %s, want %s", names[l.back], want[len(want)-1])
		}
	}
	check("a", "b", "c")
	l.touch(a, 10)
	check("b", "c", "a")
	l.touch(a, 11) // already last
	check("b", "c", "a")
	l.remove(c)
	check("b", "a")
	l.remove(b)
	check("a")
	l.remove(a)
	check()
	if l.front != nil || l.back != nil {
		t.Fatal("empty list keeps links")
	}
	l.pushBack(b)
	check("b")
}
