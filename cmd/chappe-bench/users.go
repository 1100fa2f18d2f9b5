package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// httpClient keeps connections alive across the many requests of a run.
var httpClient = &http.Client{
	Timeout:   2 * time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0},
}

var runID = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// newUser registers a fresh user and returns a client logged in as them.
func newUser(ctx context.Context, o options, name string) (*mautrix.Client, error) {
	base, err := mautrix.NewClient(o.url, "", "")
	if err != nil {
		return nil, err
	}
	base.Client = httpClient
	admin := &synapseadmin.Client{Client: base}
	localpart := fmt.Sprintf("bench-%s-%s", runID, name)
	resp, err := admin.SharedSecretRegister(ctx, o.secret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: "bench-" + runID,
	})
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", localpart, err)
	}
	cli, err := mautrix.NewClient(o.url, resp.UserID, resp.AccessToken)
	if err != nil {
		return nil, err
	}
	cli.Client = httpClient
	cli.DeviceID = resp.DeviceID
	return cli, nil
}

// newPair registers a sender and a receiver (named with the given suffixes)
// who share a private room.
func newPair(ctx context.Context, o options, senderName, receiverName string) (sender, receiver *mautrix.Client, roomID id.RoomID, err error) {
	if sender, err = newUser(ctx, o, senderName); err != nil {
		return nil, nil, "", err
	}
	if receiver, err = newUser(ctx, o, receiverName); err != nil {
		return nil, nil, "", err
	}
	room, err := sender.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{receiver.UserID}})
	if err != nil {
		return nil, nil, "", err
	}
	if _, err := receiver.JoinRoomByID(ctx, room.RoomID); err != nil {
		return nil, nil, "", err
	}
	return sender, receiver, room.RoomID, nil
}
