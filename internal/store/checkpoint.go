package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// SQLite writes every commit to the write-ahead log, and a checkpoint
// copies the log back into the database file so the log can start over.
// SQLite's automatic checkpoint runs inside whichever commit crosses 1,000
// log pages, fsyncs included, and every caller waiting on that commit waits
// for it too: at 64 concurrent settles it set the p99 (30 ms against 12 ms
// without). So the writer's automatic checkpoint is off, and checkpointer
// runs passive checkpoints on a reader connection, beside the writer.

const (
	// checkpointEvery is the least time between two checkpoints while
	// commits keep coming.
	checkpointEvery = 200 * time.Millisecond
	// checkpointIdle is how often the log is checked when no commit went
	// through inTx (the few writes outside a transaction still need
	// copying back).
	checkpointIdle = 10 * time.Second
	// walSizeLimit is what the log file is cut back to when it starts
	// over, after a burst made it grow.
	walSizeLimit = 64 << 20
)

type checkpointer struct {
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// startCheckpointer starts copying db's log back in the background.
func (db *DB) startCheckpointer() {
	c := &checkpointer{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	db.checkpoints = c
	go func() {
		defer close(c.done)
		idle := time.NewTicker(checkpointIdle)
		defer idle.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-c.wake:
			case <-idle.C:
			}
			db.checkpoint()
			select {
			case <-c.stop:
				return
			case <-time.After(checkpointEvery):
			}
		}
	}()
}

// committed tells the checkpointer that the log grew.
func (db *DB) committed() {
	if c := db.checkpoints; c != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// checkpoint copies as much of the log into the database file as readers
// allow, without waiting for the writer or for readers.
func (db *DB) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, logged, copied int64
	err := db.read.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
	if err != nil && err != sql.ErrNoRows {
		db.logger.Warn("checkpoint of the SQLite log failed", "error", err)
	}
}

// stopCheckpointer stops the background checkpoints; closing the last
// connection checkpoints what is left.
func (db *DB) stopCheckpointer() {
	if c := db.checkpoints; c != nil {
		c.stopOnce.Do(func() { close(c.stop) })
		<-c.done
	}
}
