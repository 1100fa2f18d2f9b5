// Package tests holds cross-component tests: whole homeservers driven
// through mautrix's client, as a Matrix client would drive them.
package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test on error and returns the value.
func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// errcode extracts the Matrix errcode and HTTP status of a client error.
func errcode(err error) (string, int) {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) {
		code := ""
		if httpErr.RespError != nil {
			code = httpErr.RespError.ErrCode
		}
		status := 0
		if httpErr.Response != nil {
			status = httpErr.Response.StatusCode
		}
		return code, status
	}
	return "", 0
}

func wantErr(t *testing.T, err error, code string, status int) {
	t.Helper()
	gotCode, gotStatus := errcode(err)
	if gotCode != code || gotStatus != status {
		t.Fatalf("want %s (%d), got %s (%d): %v", code, status, gotCode, gotStatus, err)
	}
}

// timelineTexts lists the bodies of m.room.message events in a room's
// joined timeline of a sync response.
func timelineTexts(resp *mautrix.RespSync, roomID id.RoomID) []string {
	room, ok := resp.Rooms.Join[roomID]
	if !ok {
		return nil
	}
	var out []string
	for _, ev := range room.Timeline.Events {
		if ev.Type == event.EventMessage {
			if body, ok := ev.Content.Raw["body"].(string); ok {
				out = append(out, body)
			}
		}
	}
	return out
}
