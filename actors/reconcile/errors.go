package reconcile

import "errors"

// Errors callers branch on.
var (
	// ErrBadDate: the date is not YYYY-MM-DD, is in the future, or is more
	// than MaxDays back (WeChat keeps bills for three months).
	ErrBadDate = errors.New("reconcile: bad date")
	// ErrNotFound: no reconciliation of that date was ever asked for or run.
	ErrNotFound = errors.New("reconcile: no reconciliation of that date")
	// ErrNoDiscrepancy: the date has no discrepancy of that key.
	ErrNoDiscrepancy = errors.New("reconcile: no such discrepancy")
	// ErrRunInProgress: the date's reconciliation is pending or running;
	// until it is done it owns the date's records.
	ErrRunInProgress = errors.New("reconcile: the date's reconciliation is pending or running")
	// ErrBadNote: a resolution's note is missing, longer than MaxNoteLen
	// characters or not printable.
	ErrBadNote = errors.New("reconcile: bad note")
	// ErrClosed: the Reconciler was closed.
	ErrClosed = errors.New("reconcile: closed")
	// ErrBillNotReady: WeChat is still generating the date's bill
	// (STATEMENT_CREATING); the run waits and tries again.
	ErrBillNotReady = errors.New("reconcile: bill not ready")
)
