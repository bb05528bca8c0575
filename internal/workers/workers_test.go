package workers

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestReusesIdleGoroutine: a function given while a goroutine waits runs
// on it; a new one starts only when none waits.
func TestReusesIdleGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Pool
		defer p.Close()
		ran := make(chan int, 3)
		p.Go(func() { ran <- 1 })
		<-ran
		synctest.Wait() // the goroutine parked
		if p.Idle() != 1 {
			t.Fatalf("idle %d after the first function, want 1", p.Idle())
		}
		p.Go(func() { ran <- 2 })
		<-ran
		synctest.Wait()
		if p.started != 1 || p.Idle() != 1 {
			t.Errorf("started %d, idle %d after a second function; want the first goroutine again", p.started, p.Idle())
		}
		// Two at once: the idle one and a new one.
		hold := make(chan struct{})
		p.Go(func() { <-hold; ran <- 3 })
		p.Go(func() { ran <- 4 })
		<-ran
		close(hold)
		<-ran
		synctest.Wait()
		if p.started != 2 || p.Idle() != 2 {
			t.Errorf("started %d, idle %d after two at once; want 2 and 2", p.started, p.Idle())
		}
	})
}

// TestIdleGoroutineEnds: a goroutine that waited IdleFor with nothing to
// do ends (synctest.Test would fail on one left behind).
func TestIdleGoroutineEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Pool
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		time.Sleep(IdleFor - time.Millisecond)
		synctest.Wait()
		if p.Idle() != 1 {
			t.Fatalf("idle %d just before IdleFor, want 1", p.Idle())
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if p.Idle() != 0 {
			t.Errorf("idle %d after IdleFor, want 0", p.Idle())
		}
		// The next function starts a goroutine of its own.
		p.Go(func() {})
		synctest.Wait()
		if p.started != 2 {
			t.Errorf("started %d, want 2", p.started)
		}
		p.Close()
	})
}

// TestClose: Close ends the idle goroutines at once; a busy one ends with
// its function; Go still runs functions afterwards.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Pool
		hold := make(chan struct{})
		p.Go(func() {})
		p.Go(func() { <-hold })
		synctest.Wait()
		p.Close()
		if p.Idle() != 0 {
			t.Errorf("idle %d after Close", p.Idle())
		}
		close(hold)
		synctest.Wait()
		if p.Idle() != 0 {
			t.Errorf("a goroutine parked after Close")
		}
		ran := make(chan struct{})
		p.Go(func() { close(ran) })
		<-ran
		synctest.Wait()
		if p.Idle() != 0 {
			t.Errorf("a goroutine parked after Close")
		}
		// No goroutine of the pool is left: synctest.Test returns without
		// advancing the clock to IdleFor.
		start := time.Now()
		t.Cleanup(func() {
			if d := time.Since(start); d != 0 {
				t.Errorf("the bubble ran %v past Close: a goroutine waited", d)
			}
		})
	})
}

// TestConcurrentGo: functions given from many goroutines at once all run,
// each once (run with -race).
func TestConcurrentGo(t *testing.T) {
	var p Pool
	defer p.Close()
	var n atomic.Int64
	var wg sync.WaitGroup
	const callers, each = 16, 200
	for range callers {
		wg.Go(func() {
			var inner sync.WaitGroup
			for range each {
				inner.Add(1)
				p.Go(func() { n.Add(1); inner.Done() })
			}
			inner.Wait()
		})
	}
	wg.Wait()
	if n.Load() != callers*each {
		t.Errorf("%d functions ran, want %d", n.Load(), callers*each)
	}
}

// deep uses about 16 KiB of stack, as a request's upstream call through
// net/http does.
//
//go:noinline
func deep(n int) byte {
	var pad [512]byte
	pad[n%512] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%512]
}

var sink atomic.Int64

// BenchmarkGo compares a function that needs a deep stack run on a new
// goroutine with one run on the pool's.
func BenchmarkGo(b *testing.B) {
	done := make(chan struct{})
	f := func() { sink.Add(int64(deep(28))); done <- struct{}{} }
	b.Run("go-statement", func(b *testing.B) {
		for b.Loop() {
			go f()
			<-done
		}
	})
	b.Run("pool", func(b *testing.B) {
		var p Pool
		defer p.Close()
		for b.Loop() {
			p.Go(f)
			<-done
		}
	})
}
