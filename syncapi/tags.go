package syncapi

import (
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// Tags are room account data of type m.tag, {"tags": {"u.work": {...}}},
// so they reach /sync with the rest of the room's account data.
const tagType = "m.tag"

// Limits: a tag's name and data, and the number of tags on one room.
const (
	maxTagBytes     = 255
	maxTagDataBytes = 4 << 10
	maxTagsPerRoom  = 256
)

type tagContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

// getTags serves GET /user/{userId}/rooms/{roomId}/tags.
func (s *SyncAPI) getTags(req *httputil.Request) (any, error) {
	userID, roomID, err := tagsPath(req, "read tags")
	if err != nil {
		return nil, err
	}
	raw, err := s.store.accountData(req.Context(), userID, roomID, tagType)
	if err != nil {
		return nil, err
	}
	return decodeTags(raw), nil
}

// putTag serves PUT /user/{userId}/rooms/{roomId}/tags/{tag}.
func (s *SyncAPI) putTag(req *httputil.Request) (any, error) {
	userID, roomID, err := tagsPath(req, "set tags")
	if err != nil {
		return nil, err
	}
	tag, err := tagName(req)
	if err != nil {
		return nil, err
	}
	body, err := readObject(req, maxTagDataBytes)
	if err != nil {
		return nil, err
	}
	// order is "a number in a range [0,1]"; other keys are kept as given.
	var data struct {
		Order *json.RawMessage `json:"order"`
	}
	if err := json.Unmarshal(body, &data); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if data.Order != nil && string(*data.Order) != "null" {
		var order float64
		if err := json.Unmarshal(*data.Order, &order); err != nil || order < 0 || order > 1 {
			return nil, mxerr.BadJSON("order must be a number between 0 and 1")
		}
	}
	err = s.updateAccountData(req.Context(), userID, roomID, tagType, func(old []byte) ([]byte, error) {
		c := decodeTags(old)
		c.Tags[tag] = body
		if len(c.Tags) > maxTagsPerRoom {
			return nil, mxerr.InvalidParam("a room may have at most %d tags", maxTagsPerRoom)
		}
		return encodeTags(c)
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// deleteTag serves DELETE /user/{userId}/rooms/{roomId}/tags/{tag}.
// Removing a tag the room does not have succeeds, as in Synapse.
func (s *SyncAPI) deleteTag(req *httputil.Request) (any, error) {
	userID, roomID, err := tagsPath(req, "remove tags")
	if err != nil {
		return nil, err
	}
	tag, err := tagName(req)
	if err != nil {
		return nil, err
	}
	err = s.updateAccountData(req.Context(), userID, roomID, tagType, func(old []byte) ([]byte, error) {
		c := decodeTags(old)
		delete(c.Tags, tag)
		return encodeTags(c)
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func tagsPath(req *httputil.Request, what string) (userID, roomID string, err error) {
	if userID, err = selfOnly(req, what); err != nil {
		return "", "", err
	}
	roomID = req.PathValue("roomId")
	if !mxid.RoomID(roomID) {
		return "", "", mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	return userID, roomID, nil
}

func tagName(req *httputil.Request) (string, error) {
	tag := req.PathValue("tag")
	if tag == "" || len(tag) > maxTagBytes {
		return "", mxerr.InvalidParam("a tag must be 1 to %d bytes", maxTagBytes)
	}
	return tag, nil
}

// decodeTags reads stored m.tag content; anything unreadable counts as no
// tags rather than failing every later request.
func decodeTags(raw []byte) *tagContent {
	c := &tagContent{}
	if raw != nil {
		_ = json.Unmarshal(raw, c)
	}
	if c.Tags == nil {
		c.Tags = map[string]json.RawMessage{}
	}
	return c
}

func encodeTags(c *tagContent) ([]byte, error) {
	out, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode tags: %w", err)
	}
	return out, nil
}
