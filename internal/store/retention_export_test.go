package store

// SetPurgeBatchRows makes PurgeReservations delete at most n rows per
// transaction until the returned function restores the default, so that
// tests reach the batch boundaries with a handful of rows.
func SetPurgeBatchRows(n int) (restore func()) {
	old := purgeBatchRows
	purgeBatchRows = n
	return func() { purgeBatchRows = old }
}
