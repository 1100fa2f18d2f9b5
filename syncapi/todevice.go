package syncapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/userapi"
)

// To-device messages. Each message is a sy_to_device row at its own
// sy_stream position. A sync delivers the device's rows after its since
// token's stream position, at most toDeviceLimit of them; a row is deleted
// only when a later sync's since covers its position, i.e. once the
// client has shown it received the response that carried it. A sync
// retried with the same since gets the same messages again, and none is
// lost across restarts or processes.

// toDeviceLimit bounds the messages of one sync; the rest come next time.
const toDeviceLimit = 100

// Limits of one /sendToDevice: the body limit bounds the bytes, these the
// rows one request may write.
const (
	maxToDeviceMessages = 10000
	maxToDeviceContent  = 64 * 1024
)

// wakeConcurrency bounds the wake-ups one /sendToDevice publishes at once.
const wakeConcurrency = 32

// kinds of OutputMessage added for E2EE.
const (
	kindToDevice   = "to_device"
	kindDeviceList = "device_list"
)

func (s *SyncAPI) sendToDevice(ctx context.Context, req *SendToDeviceRequest) (*SendToDeviceResponse, error) {
	type target struct {
		user, device string
		content      json.RawMessage
	}
	var targets []target
	for user, devices := range req.Messages {
		var all []string
		for device, content := range devices {
			if len(content) > maxToDeviceContent {
				return nil, mxerr.TooLarge("a to-device message is over %d bytes", maxToDeviceContent)
			}
			if device != "*" {
				targets = append(targets, target{user, device, content})
				continue
			}
			if all == nil {
				resp, err := userapi.QueryDevices.Call(ctx, s.bus, &userapi.QueryDevicesRequest{UserID: user})
				if err != nil {
					if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
						break // no such user: nothing to deliver
					}
					return nil, err
				}
				for _, d := range resp.Devices {
					all = append(all, d.DeviceID)
				}
			}
			for _, d := range all {
				targets = append(targets, target{user, d, content})
			}
		}
		if len(targets) > maxToDeviceMessages {
			return nil, mxerr.InvalidParam("at most %d to-device messages per request", maxToDeviceMessages)
		}
	}
	type woken struct {
		user string
		pos  int64
	}
	var wake []woken
	err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		wake = wake[:0]
		res, err := tx.ExecContext(ctx, `
INSERT INTO sy_to_device_txns (sender, sender_device, txn_id, created_ms) VALUES ($1, $2, $3, $4)
ON CONFLICT (sender, sender_device, txn_id) DO NOTHING`, req.Sender, req.SenderDevice, req.TxnID, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("record to-device transaction: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // a retried transaction: already stored
		}
		if len(targets) == 0 {
			return nil
		}
		first, err := reservePositions(ctx, tx, len(targets))
		if err != nil {
			return err
		}
		rows := make([]toDeviceRow, len(targets))
		for i, t := range targets {
			rows[i] = toDeviceRow{first + int64(i), t.user, t.device, string(t.content)}
			wake = append(wake, woken{t.user, rows[i].pos})
		}
		return insertToDevice(ctx, tx, req.Sender, req.Type, rows)
	})
	if err != nil {
		return nil, err
	}
	last := map[string]int64{}
	for _, w := range wake {
		last[w.user] = max(last[w.user], w.pos)
	}
	// Each wake-up waits for its JetStream acknowledgement: published in
	// turn, a message to a thousand users would wait for a thousand.
	var wg sync.WaitGroup
	slots := make(chan struct{}, wakeConcurrency)
	for user, pos := range last {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			s.publish(ctx, &OutputMessage{Kind: kindToDevice, Pos: pos, UserID: user})
		})
	}
	wg.Wait()
	return &SendToDeviceResponse{}, nil
}

// reservePositions takes n consecutive sy_stream positions inside tx (as
// n calls of nextPos would, in one statement) and returns the first.
func reservePositions(ctx context.Context, tx *sqlutil.Tx, n int) (int64, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, `UPDATE sy_stream SET pos = pos + $1 WHERE id = 1 RETURNING pos`, n).Scan(&last); err != nil {
		return 0, fmt.Errorf("reserve %d sync stream positions: %w", n, err)
	}
	return last - int64(n) + 1, nil
}

// toDeviceRow is one message to store.
type toDeviceRow struct {
	pos          int64
	user, device string
	content      string
}

// insertBatchSizes are the row counts of the multi-row INSERTs that store
// a request's messages: a request is cut greedily into batches of these
// sizes, so that a thousand messages take two statements and the
// statements have few distinct texts.
var insertBatchSizes = []int{500, 100, 20, 5, 1}

// insertToDevice stores messages of one sender and type.
func insertToDevice(ctx context.Context, tx *sqlutil.Tx, sender, typ string, rows []toDeviceRow) error {
	for len(rows) > 0 {
		size := 1
		for _, s := range insertBatchSizes {
			if s <= len(rows) {
				size = s
				break
			}
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO sy_to_device (pos, user_id, device_id, sender, type, content) VALUES `)
		args := make([]any, 2, 2+4*size)
		args[0], args[1] = sender, typ
		for i, r := range rows[:size] {
			if i > 0 {
				q.WriteString(", ")
			}
			n := 3 + 4*i
			fmt.Fprintf(&q, "($%d, $%d, $%d, $1, $2, $%d)", n, n+1, n+2, n+3)
			args = append(args, r.pos, r.user, r.device, r.content)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("store %d to-device messages: %w", size, err)
		}
		rows = rows[size:]
	}
	return nil
}

// prepareToDevice runs before a sync is built: it deletes the device's
// messages that the since token acknowledges, and, when more than
// toDeviceLimit messages wait, lowers now's stream position to the last
// one sent, so that the token covers exactly what the response carries
// (account data and the like past it come with the rest next time).
func (s *SyncAPI) prepareToDevice(ctx context.Context, sr *syncRequest, now streamPos) (streamPos, error) {
	d := sr.device
	from := int64(0)
	if !sr.initial {
		from = sr.since.Stream
		if err := s.ackToDevice(ctx, d.UserID, d.DeviceID, from); err != nil {
			return now, err
		}
	}
	end, err := s.toDeviceEnd(ctx, d.UserID, d.DeviceID, from, now.Stream, toDeviceLimit)
	if err != nil {
		return now, err
	}
	now.Stream = end
	return now, nil
}

// ackToDevice deletes the device's messages at or before pos: the client
// has shown it received them. (Sliding sync's to_device extension too.)
func (s *SyncAPI) ackToDevice(ctx context.Context, userID, deviceID string, pos int64) error {
	// A position this process already acknowledged has nothing left at or
	// before it: a message's position is taken when it is stored, so none
	// can arrive below a token that was handed out.
	key := userID + "\x00" + deviceID
	if pos <= s.toDeviceAcked.through(key) {
		return nil
	}
	if err := s.deleteDelivered(ctx, userID, deviceID, pos); err != nil {
		return err
	}
	s.toDeviceAcked.store(key, pos)
	return nil
}

// maxAckedPositions bounds the devices ackedPositions remembers (some
// 100 bytes each): beyond, it forgets them all, which costs each device
// one more read of its to-device messages.
const maxAckedPositions = 1 << 17

// ackedPositions remembers, per user+device, the to-device position
// through which this process deleted the delivered messages.
type ackedPositions struct {
	m sync.Map     // key -> int64
	n atomic.Int64 // keys stored since the last reset (about m's size)
}

// through is the position remembered for key (0: none).
func (a *ackedPositions) through(key string) int64 {
	if pos, ok := a.m.Load(key); ok {
		return pos.(int64)
	}
	return 0
}

func (a *ackedPositions) store(key string, pos int64) {
	if _, loaded := a.m.Swap(key, pos); !loaded && a.n.Add(1) > maxAckedPositions {
		a.m.Clear()
		a.n.Store(0)
	}
}

func (s *SyncAPI) deleteDelivered(ctx context.Context, userID, deviceID string, pos int64) error {
	// Most syncs have nothing to delete: a read first keeps them off
	// SQLite's single write lock, which the roomserver's commits hold.
	var one int
	err := s.store.db.QueryRowContext(ctx, `SELECT 1 FROM sy_to_device WHERE user_id = $1 AND device_id = $2 AND pos <= $3 LIMIT 1`,
		userID, deviceID, pos).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for delivered to-device messages: %w", err)
	}
	if _, err := s.store.db.ExecContext(ctx, `DELETE FROM sy_to_device WHERE user_id = $1 AND device_id = $2 AND pos <= $3`,
		userID, deviceID, pos); err != nil {
		return fmt.Errorf("delete delivered to-device messages: %w", err)
	}
	return nil
}

// toDeviceEnd is where a delivery of the device's messages after from
// ends: to when at most limit (<= toDeviceLimit) messages wait in
// (from, to], else the position of the limit-th.
func (s *SyncAPI) toDeviceEnd(ctx context.Context, userID, deviceID string, from, to int64, limit int) (int64, error) {
	if from >= to {
		return to, nil // the stream did not move: no query
	}
	rows, err := s.store.db.QueryContext(ctx, `SELECT pos FROM sy_to_device WHERE user_id = $1 AND device_id = $2 AND pos > $3 AND pos <= $4 ORDER BY pos LIMIT $5`,
		userID, deviceID, from, to, limit+1)
	if err != nil {
		return to, fmt.Errorf("count to-device messages: %w", err)
	}
	defer rows.Close()
	var positions []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			return to, fmt.Errorf("scan to-device position: %w", err)
		}
		positions = append(positions, p)
	}
	if err := rows.Err(); err != nil {
		return to, fmt.Errorf("count to-device messages: %w", err)
	}
	if len(positions) <= limit {
		return to, nil
	}
	return positions[limit-1], nil
}

// toDeviceEvents reads the device's messages in (from, to].
func (s *SyncAPI) toDeviceEvents(ctx context.Context, userID, deviceID string, from, to int64) ([]json.RawMessage, error) {
	if from >= to {
		return []json.RawMessage{}, nil // the stream did not move: no query
	}
	rows, err := s.store.db.QueryContext(ctx, `SELECT sender, type, content FROM sy_to_device WHERE user_id = $1 AND device_id = $2 AND pos > $3 AND pos <= $4 ORDER BY pos LIMIT $5`,
		userID, deviceID, from, to, toDeviceLimit)
	if err != nil {
		return nil, fmt.Errorf("read to-device messages: %w", err)
	}
	defer rows.Close()
	out := []json.RawMessage{}
	for rows.Next() {
		var sender, typ, content string
		if err := rows.Scan(&sender, &typ, &content); err != nil {
			return nil, fmt.Errorf("scan to-device message: %w", err)
		}
		ev, err := toDeviceEvent(sender, typ, content)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// toDeviceEvent is a stored message as clients get it.
func toDeviceEvent(sender, typ, content string) (json.RawMessage, error) {
	ev, err := json.Marshal(map[string]any{"sender": sender, "type": typ, "content": json.RawMessage(content)})
	if err != nil {
		return nil, fmt.Errorf("encode to-device message: %w", err)
	}
	return ev, nil
}
