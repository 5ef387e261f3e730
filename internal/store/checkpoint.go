package store

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
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
	// commits keep coming. A commit that coincides with a checkpoint waits
	// longer the more the checkpoint copies, so small frequent ones keep
	// the settles' p99 down: at 64 callers with 50 ms calls, 3–5 ms every
	// 10–20 ms against 14–18 ms every 200 ms and 37–65 ms every 2 s.
	checkpointEvery = 20 * time.Millisecond
	// checkpointIdle is how often the log is checked when no commit went
	// through inTx (the few writes outside a transaction still need
	// copying back).
	checkpointIdle = 10 * time.Second
	// walSizeLimit is what the log file is cut back to when it starts
	// over, after a burst made it grow.
	walSizeLimit = 64 << 20
	// walRestartFrames is the log length (in pages, 64 MB) past which a
	// checkpoint makes sure the log starts over. The writer starts the
	// log over only when a checkpoint copied all of it back before the
	// writer's next transaction; under a steady stream of commits a
	// passive checkpoint may keep finding one landed while it copied, and
	// the log would grow for ever. A restart checkpoint waits for the
	// writer's transaction to end, copies what the passive one left and
	// holds the writer until its fsync, so it is kept for a log this long:
	// at 4,096 pages it set the settles' p99 (27 ms against 10–14 ms).
	walRestartFrames = 16384
)

type checkpointer struct {
	every         time.Duration // checkpointEvery, shorter in tests
	restartFrames int64         // walRestartFrames, lower in tests
	completed     atomic.Int64  // checkpoints that copied the whole log
	wake          chan struct{}
	stop          chan struct{}
	stopOnce      sync.Once
	done          chan struct{}
}

// startCheckpointer starts copying db's log back in the background, at
// most once every interval, restarting it past restartFrames.
func (db *DB) startCheckpointer(every time.Duration, restartFrames int64) {
	c := &checkpointer{every: every, restartFrames: restartFrames, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
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
			case <-time.After(c.every):
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
// allow, without waiting for the writer or for readers, unless the log is
// long enough to need starting over.
func (db *DB) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, logged, copied int64
	err := db.read.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
	if err == nil && logged >= db.checkpoints.restartFrames {
		err = db.read.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &logged, &copied)
	}
	if err == nil && busy == 0 && logged == copied {
		db.checkpoints.completed.Add(1)
	}
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
