package cache

import bolt "go.etcd.io/bbolt"

type boltTx = bolt.Tx

// checkTx runs bbolt's consistency check of the whole file.
func checkTx(tx *bolt.Tx) error {
	for err := range tx.Check() {
		return err
	}
	return nil
}
