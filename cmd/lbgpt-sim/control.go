package main

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/lbgpt/lbgpt/internal/sim"
)

// withControl serves the /_sim/ control endpoints and hands every other
// request to s. Control requests are not recorded by s.
func withControl(s *sim.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, ok := strings.CutPrefix(r.URL.Path, "/_sim/")
		if !ok {
			s.ServeHTTP(w, r)
			return
		}
		switch {
		case op == "log" && r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, s.Log())
		case op == "stats" && r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, s.Stats())
		case op == "faults" && r.Method == http.MethodPost:
			var f sim.Faults
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decode faults: " + err.Error()})
				return
			}
			if err := s.SetFaults(r.URL.Query().Get("account"), f); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control endpoint " + r.Method + " " + r.URL.Path})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
