package syncapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// Limits of one sliding sync request. Element X sends one or two lists, a
// few dozen required_state entries and a handful of subscriptions; the
// bounds leave room for other clients while keeping one request from
// asking the server for everything at once.
const (
	slidingMaxBody          = 256 << 10
	slidingMaxLists         = 10
	slidingMaxRanges        = 10
	slidingMaxRangeIndex    = 1_000_000
	slidingMaxSubs          = 100
	slidingMaxStateEntries  = 100
	slidingMaxKeyBytes      = 64 // conn_id and list names
	slidingMaxFilterEntries = 100
)

// slidingRequest is a parsed simplified sliding sync request (MSC4186 as
// Synapse serves it on the unstable path). Both the request shapes of
// Synapse (ranges, required_state as [type, state_key] pairs, pos and
// timeout as query parameters) and of the MSC's latest text (range,
// required_state as include/exclude objects, pos and timeout in the body)
// are read.
type slidingRequest struct {
	ConnID      string                        `json:"conn_id"`
	Pos         string                        `json:"pos"`
	Timeout     *int64                        `json:"timeout"`
	SetPresence string                        `json:"set_presence"`
	Lists       map[string]*slidingList       `json:"lists"`
	Subs        map[string]*slidingRoomConfig `json:"room_subscriptions"`
	Extensions  slidingExtensionsRequest      `json:"extensions"`

	timeout     time.Duration
	setPresence string
}

// slidingRoomConfig is what to send of each room matched by a list or a
// subscription.
type slidingRoomConfig struct {
	TimelineLimit *int            `json:"timeline_limit"`
	RequiredState json.RawMessage `json:"required_state"`

	state requiredState
	limit int
}

type slidingList struct {
	slidingRoomConfig
	Ranges  [][2]int64      `json:"ranges"`
	Range   *[2]int64       `json:"range"`
	Filters *slidingFilters `json:"filters"`
}

// slidingFilters are a list's filters. is_invite is Synapse's name,
// is_invited the MSC's latest.
type slidingFilters struct {
	IsDM         *bool     `json:"is_dm"`
	IsEncrypted  *bool     `json:"is_encrypted"`
	IsInvite     *bool     `json:"is_invite"`
	IsInvited    *bool     `json:"is_invited"`
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
	Spaces       []string  `json:"spaces"`
	Tags         []string  `json:"tags"`
	NotTags      []string  `json:"not_tags"`
}

func (f *slidingFilters) invited() *bool {
	if f.IsInvited != nil {
		return f.IsInvited
	}
	return f.IsInvite
}

// slidingExtensionsRequest are the extensions Chappe serves. lists and
// rooms choose the rooms an extension covers; absent, it covers every
// room of the lists' windows and subscriptions.
type slidingExtensionsRequest struct {
	AccountData *slidingExtension       `json:"account_data"`
	Receipts    *slidingExtension       `json:"receipts"`
	Typing      *slidingExtension       `json:"typing"`
	ToDevice    *slidingToDeviceRequest `json:"to_device"`
	E2EE        *slidingExtension       `json:"e2ee"`
}

// slidingToDeviceRequest is the to_device extension (MSC3885): since is
// the next_batch of an earlier response, and acknowledges the messages up
// to it.
type slidingToDeviceRequest struct {
	Enabled *bool  `json:"enabled"`
	Limit   *int   `json:"limit"`
	Since   string `json:"since"`

	since int64
	limit int
}

func (t *slidingToDeviceRequest) on() bool { return t != nil && t.Enabled != nil && *t.Enabled }

type slidingExtension struct {
	Enabled *bool    `json:"enabled"`
	Lists   []string `json:"lists"`
	Rooms   []string `json:"rooms"`
}

func (e *slidingExtension) on() bool { return e != nil && e.Enabled != nil && *e.Enabled }

// covers says whether the extension applies to roomID, which matched the
// given lists (none when only subscribed).
func (e *slidingExtension) covers(roomID string, lists []string, subscribed bool) bool {
	if e.Lists == nil && e.Rooms == nil {
		return true
	}
	for _, l := range e.Lists {
		if l == "*" && len(lists) > 0 {
			return true
		}
		for _, m := range lists {
			if l == m {
				return true
			}
		}
	}
	for _, r := range e.Rooms {
		if r == roomID || r == "*" && subscribed {
			return true
		}
	}
	return false
}

// parseSlidingRequest reads and checks the body and query parameters;
// every problem is a 400 with a Matrix error, never a 500.
func parseSlidingRequest(req *httputil.Request) (*slidingRequest, error) {
	body, err := readOptionalObject(req, slidingMaxBody)
	if err != nil {
		return nil, err
	}
	sr := &slidingRequest{}
	if err := json.Unmarshal(body, sr); err != nil {
		return nil, mxerr.BadJSON("not a sliding sync request: %v", err)
	}
	q := req.URL.Query()
	if v := q.Get("pos"); v != "" {
		sr.Pos = v
	}
	if v := q.Get("timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, mxerr.InvalidParam("timeout: %q is not a number of milliseconds", v)
		}
		sr.Timeout = &ms
	}
	if sr.Timeout != nil {
		sr.timeout = min(time.Duration(max(*sr.Timeout, 0))*time.Millisecond, maxTimeout)
	}
	if v := q.Get("set_presence"); v != "" {
		sr.SetPresence = v
	}
	switch sr.SetPresence {
	case "", presenceOnline:
		sr.setPresence = presenceOnline
	case presenceUnavailable:
		sr.setPresence = presenceUnavailable
	case presenceOffline:
	default:
		return nil, mxerr.InvalidParam("set_presence: %q is not online, offline or unavailable", sr.SetPresence)
	}
	if len(sr.ConnID) > slidingMaxKeyBytes {
		return nil, mxerr.InvalidParam("conn_id is longer than %d bytes", slidingMaxKeyBytes)
	}
	if err := sr.check(req.Device.UserID); err != nil {
		return nil, err
	}
	return sr, nil
}

func (sr *slidingRequest) check(userID string) error {
	if len(sr.Lists) > slidingMaxLists {
		return mxerr.InvalidParam("at most %d lists", slidingMaxLists)
	}
	if len(sr.Subs) > slidingMaxSubs {
		return mxerr.InvalidParam("at most %d room subscriptions", slidingMaxSubs)
	}
	for name, l := range sr.Lists {
		if name == "" || len(name) > slidingMaxKeyBytes {
			return mxerr.InvalidParam("list names must be 1 to %d bytes", slidingMaxKeyBytes)
		}
		if l == nil {
			return mxerr.InvalidParam("lists.%s must be an object", name)
		}
		if l.Range != nil {
			l.Ranges = append(l.Ranges, *l.Range)
		}
		if len(l.Ranges) > slidingMaxRanges {
			return mxerr.InvalidParam("lists.%s: at most %d ranges", name, slidingMaxRanges)
		}
		for _, r := range l.Ranges {
			if r[0] < 0 || r[1] < r[0] || r[1] >= slidingMaxRangeIndex {
				return mxerr.InvalidParam("lists.%s: range [%d, %d] must have 0 <= start <= end < %d", name, r[0], r[1], slidingMaxRangeIndex)
			}
		}
		if err := l.parse("lists."+name, userID); err != nil {
			return err
		}
		if f := l.Filters; f != nil {
			if len(f.RoomTypes)+len(f.NotRoomTypes)+len(f.Spaces)+len(f.Tags)+len(f.NotTags) > slidingMaxFilterEntries {
				return mxerr.InvalidParam("lists.%s.filters: at most %d entries", name, slidingMaxFilterEntries)
			}
		}
	}
	if td := sr.Extensions.ToDevice; td != nil {
		if td.Since != "" {
			n, err := strconv.ParseInt(td.Since, 10, 64)
			if err != nil || n < 0 {
				return mxerr.InvalidParam("extensions.to_device.since: %q is not a next_batch of this server", td.Since)
			}
			td.since = n
		}
		// At most toDeviceLimit, as /sync; 0 or less would never deliver.
		td.limit = toDeviceLimit
		if td.Limit != nil {
			td.limit = min(max(*td.Limit, 1), toDeviceLimit)
		}
	}
	for roomID, c := range sr.Subs {
		if !mxid.RoomID(roomID) {
			return mxerr.InvalidParam("room_subscriptions: %q is not a room ID", roomID)
		}
		if c == nil {
			return mxerr.InvalidParam("room_subscriptions.%s must be an object", roomID)
		}
		if err := c.parse("room_subscriptions."+roomID, userID); err != nil {
			return err
		}
	}
	return nil
}

// parse reads timeline_limit and required_state. The timeline is capped as
// /sync's is.
func (c *slidingRoomConfig) parse(where, userID string) error {
	if c.TimelineLimit != nil {
		if *c.TimelineLimit < 0 {
			return mxerr.InvalidParam("%s.timeline_limit must not be negative", where)
		}
		c.limit = min(*c.TimelineLimit, maxTimelineLimit)
	}
	st, err := parseRequiredState(c.RequiredState, userID)
	if err != nil {
		return mxerr.InvalidParam("%s.required_state: %v", where, err)
	}
	c.state = st
	return nil
}

// slidingPos is a parsed pos: the connection position (a row of
// sy_sliding_positions) and the stream positions the client has seen.
type slidingPos struct {
	id     int64
	stream streamPos
}

// The pos is "<position id>.<sync token>", opaque to clients.
func (p slidingPos) String() string {
	return strconv.FormatInt(p.id, 10) + "." + p.stream.String()
}

// parseSlidingPos reads a pos; a malformed one is unknown, as a pos from
// a server that forgot it.
func parseSlidingPos(s string) (slidingPos, error) {
	id, token, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil || n <= 0 {
		return slidingPos{}, unknownPos()
	}
	stream, err := parseStreamToken("pos", token)
	if err != nil {
		return slidingPos{}, unknownPos()
	}
	return slidingPos{id: n, stream: stream}, nil
}

func unknownPos() *mxerr.Error {
	return mxerr.New(400, "M_UNKNOWN_POS", "unknown or expired pos: start a new connection")
}
