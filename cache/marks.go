package cache

import (
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucketMarks holds small named values kept with the entries: how far the
// daemon has read what other hosts shared, for instance.
var bucketMarks = []byte("marks")

// Mark is the value SetMark last saved under name; nil when there is none
// (or the store is closed).
func (s *Store) Mark(name string) []byte {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.closed {
		return nil
	}
	var v []byte
	err := Guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketMarks); b != nil {
				v = slices.Clone(b.Get([]byte(name)))
			}
			return nil
		})
	})
	if err != nil {
		s.log.Warn("cache mark unreadable", "name", name, "err", err)
		return nil
	}
	return v
}

// SetMark saves value under name, on disk when it returns; Compact keeps
// it. A nil value removes it.
func (s *Store) SetMark(name string, value []byte) error {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	err := Guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketMarks)
			if err != nil {
				return err
			}
			if value == nil {
				return b.Delete([]byte(name))
			}
			return b.Put([]byte(name), value)
		})
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	if err != nil {
		return fmt.Errorf("cache: save mark %s: %w", name, err)
	}
	return nil
}
