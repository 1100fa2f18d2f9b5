package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// ageSlidingConns makes every connection of the server look unused for d
// (a week cannot pass in a test; the server reads the age from its
// database).
func ageSlidingConns(t *testing.T, srv *testserver.Server, d time.Duration) {
	t.Helper()
	_, err := srv.Base.DB.ExecContext(context.Background(), `UPDATE sy_sliding_conns SET last_used_ms = $1`, time.Now().Add(-d).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
}

func slidingConnCount(t *testing.T, srv *testserver.Server) int {
	t.Helper()
	var n int
	if err := srv.Base.DB.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM sy_sliding_conns`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A connection unused for more than a week expires: its pos answers 400
// M_UNKNOWN_POS (MSC4186) and the client starts a new one. One used within
// the week is kept, and using it makes it young again.
func TestSlidingConnectionExpires(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	sharedRoom(t, alice, bob)
	body := elementXBody([][2]int{{0, 19}}, nil)
	first := mustSliding(t, alice, "", -1, body)

	ageSlidingConns(t, srv, 6*24*time.Hour)
	second := mustSliding(t, alice, first.Pos, 0, body)
	var lastUsed int64
	err := srv.Base.DB.QueryRowContext(context.Background(), `SELECT last_used_ms FROM sy_sliding_conns`).Scan(&lastUsed)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(time.UnixMilli(lastUsed)); age > time.Hour {
		t.Fatalf("a connection used again still looks %v old", age)
	}

	ageSlidingConns(t, srv, 8*24*time.Hour)
	_, err = slidingSync(t, alice, second.Pos, 0, body)
	wantErr(t, err, "M_UNKNOWN_POS", http.StatusBadRequest)
	if n := slidingConnCount(t, srv); n != 0 {
		t.Fatalf("%d connections left after expiry", n)
	}
	// The client starts again, as Element X does on M_UNKNOWN_POS.
	again := mustSliding(t, alice, "", -1, body)
	if again.Lists["all_rooms"].Count != 1 {
		t.Fatalf("new connection: count %d", again.Lists["all_rooms"].Count)
	}
}
