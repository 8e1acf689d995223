package reconcile

// SetMatchHook makes r call fn after each order matched (a crash test).
func SetMatchHook(r *Reconciler, fn func(n int) error) { r.matchHook = fn }

// SetCheckpoint sets how many orders r matches between two saves of its
// cursor.
func SetCheckpoint(r *Reconciler, n int) { r.checkpoint = n }

// SetActive marks date as the one r's job is reconciling, as RunDate does
// before its first write.
func SetActive(r *Reconciler, date string) {
	r.mu.Lock()
	r.active = date
	r.mu.Unlock()
}

// SetDoneHook makes r call fn after a run's last write, before it lets go
// of the run's date.
func SetDoneHook(r *Reconciler, fn func()) { r.doneHook = fn }
