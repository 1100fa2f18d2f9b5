package tests

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// The cost of history visibility in an initial /sync. Run with:
//
//	go test -tags goolm -run '^$' -bench InitialSyncJoinedLater -benchtime 20x ./tests/
//
// bob joined each of 300 rooms after three messages, and two more came
// after his join: every room's timeline (10 events) reaches back past his
// join, the case where the events before it must be judged. With
// "shared" he sees them all; with "joined" they are left out.
func BenchmarkInitialSyncJoinedLater(b *testing.B) {
	const rooms = 300
	for _, visibility := range []string{"shared", "joined"} {
		b.Run(visibility, func(b *testing.B) {
			srv := testserver.New(b)
			users := benchUsers(b, srv, "u", 2)
			alice, bob := users[0], users[1]
			v3 := srv.URL + "/_matrix/client/v3"
			parallel(b, rooms, func(i int) error {
				body, _ := json.Marshal(map[string]any{
					// A distinct create event each: version 12 room IDs are its hash.
					"creation_content": map[string]int{"bench": i},
					"preset":           "private_chat", "name": fmt.Sprintf("room %d", i),
					"initial_state": []map[string]any{{"type": "m.room.history_visibility", "state_key": "",
						"content": map[string]string{"history_visibility": visibility}}},
				})
				var created struct {
					RoomID string `json:"room_id"`
				}
				if err := json.Unmarshal(benchDo(b, "POST", v3+"/createRoom", alice.token, string(body)), &created); err != nil {
					return err
				}
				room := v3 + "/rooms/" + url.PathEscape(created.RoomID)
				send := func(n int) {
					benchDo(b, "PUT", fmt.Sprintf("%s/send/m.room.message/t%d", room, n), alice.token,
						fmt.Sprintf(`{"msgtype":"m.text","body":"message %d"}`, n))
				}
				for n := range 3 {
					send(n)
				}
				benchDo(b, "POST", room+"/invite", alice.token, `{"user_id":"`+bob.user+`"}`)
				benchDo(b, "POST", room+"/join", bob.token, `{}`)
				for n := 3; n < 5; n++ {
					send(n)
				}
				return nil
			})
			b.ResetTimer()
			for range b.N {
				var resp struct {
					Rooms struct {
						Join map[string]json.RawMessage `json:"join"`
					} `json:"rooms"`
				}
				if err := json.Unmarshal(benchDo(b, "GET", v3+"/sync?timeout=0", bob.token, ""), &resp); err != nil {
					b.Fatal(err)
				}
				if len(resp.Rooms.Join) != rooms {
					b.Fatalf("%d rooms, want %d", len(resp.Rooms.Join), rooms)
				}
			}
			reportMS(b)
		})
	}
}
