package balance

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

// A backend a reload removes closes its upstream connections once its last
// call is done, instead of leaving them idle for the transport's 90 s.
func TestRetiredMemberClosesConnections(t *testing.T) {
	var closed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	old := config.Backend{Name: "old", Type: config.TypeOpenAICompatible, BaseURL: srv.URL + "/v1", MaxConcurrent: 5, Weight: 1}
	prov, err := provider.New(old, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := New([]config.Backend{old}, []*provider.Provider{prov}, Options{})
	_, _, err = Do(t.Context(), p, Request{Model: "m"}, func(ctx context.Context, m *Member) (struct{}, Outcome, error) {
		res, err := m.Provider.Send(ctx, provider.Call{Method: http.MethodGet, Path: provider.PathModels})
		return struct{}{}, Outcome{Obs: res.Obs}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := closed.Load(); n != 0 {
		t.Fatalf("%d connections closed before the reload", n)
	}
	p.Reconfigure([]config.Backend{{Name: "new", Type: config.TypeOpenAICompatible, BaseURL: "http://127.0.0.1:9/v1"}}, nil, Options{})
	for deadline := time.Now().Add(5 * time.Second); closed.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the removed backend's idle connection is still open")
		}
	}
}
