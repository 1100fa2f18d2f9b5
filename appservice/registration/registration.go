// Package registration reads application service registration files (the
// YAML files listed under `app_services:`) and answers the namespace
// questions every component asks about them: is this user, alias or room
// an application service's, and exclusively so. It depends on nothing of
// Chappe's, so that config (validation), userapi (tokens, registration)
// and appservice (pushing events) can all use it.
package registration

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Registration is one application service, as its YAML file describes it.
type Registration struct {
	ID              string     `yaml:"id"`
	URL             *string    `yaml:"url"` // nil or "": no pushes
	ASToken         string     `yaml:"as_token"`
	HSToken         string     `yaml:"hs_token"`
	SenderLocalpart string     `yaml:"sender_localpart"`
	Namespaces      Namespaces `yaml:"namespaces"`
	RateLimited     *bool      `yaml:"rate_limited"`
	Protocols       []string   `yaml:"protocols"`

	// File is where the registration was read from.
	File string `yaml:"-"`
}

type Namespaces struct {
	Users   []Namespace `yaml:"users"`
	Aliases []Namespace `yaml:"aliases"`
	Rooms   []Namespace `yaml:"rooms"`
}

// Namespace is a regular expression over user IDs, aliases or room IDs.
// As in Synapse, it must match at the start of the ID (not necessarily
// the whole ID).
type Namespace struct {
	Exclusive bool   `yaml:"exclusive"`
	Regex     string `yaml:"regex"`

	re *regexp.Regexp
}

// BaseURL is the service's URL without a trailing slash ("" when unset).
func (r *Registration) BaseURL() string {
	if r.URL == nil {
		return ""
	}
	return strings.TrimRight(*r.URL, "/")
}

// SenderUserID is the service's own user.
func (r *Registration) SenderUserID(serverName string) string {
	return "@" + r.SenderLocalpart + ":" + serverName
}

// IsRateLimited is rate_limited, true when left out.
func (r *Registration) IsRateLimited() bool { return r.RateLimited == nil || *r.RateLimited }

// OwnsUser tells whether userID is the service's sender or in one of its
// user namespaces.
func (r *Registration) OwnsUser(userID, serverName string) bool {
	return userID == r.SenderUserID(serverName) || matchAny(r.Namespaces.Users, userID, false)
}

// ExclusiveUser tells whether userID is in an exclusive user namespace.
func (r *Registration) ExclusiveUser(userID string) bool {
	return matchAny(r.Namespaces.Users, userID, true)
}

// MatchesUser, MatchesAlias and MatchesRoom test the namespaces (exclusive
// or not).
func (r *Registration) MatchesUser(userID string) bool {
	return matchAny(r.Namespaces.Users, userID, false)
}
func (r *Registration) MatchesAlias(alias string) bool {
	return matchAny(r.Namespaces.Aliases, alias, false)
}
func (r *Registration) MatchesRoom(roomID string) bool {
	return matchAny(r.Namespaces.Rooms, roomID, false)
}

// ExclusiveAlias tells whether alias is in an exclusive alias namespace.
func (r *Registration) ExclusiveAlias(alias string) bool {
	return matchAny(r.Namespaces.Aliases, alias, true)
}

// HasASToken compares in constant time.
func (r *Registration) HasASToken(token string) bool {
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(r.ASToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func matchAny(ns []Namespace, s string, exclusiveOnly bool) bool {
	for _, n := range ns {
		if exclusiveOnly && !n.Exclusive {
			continue
		}
		if n.re != nil && n.re.MatchString(s) {
			return true
		}
	}
	return false
}

// Load reads and checks every file; errors name the file and the key.
// Duplicate ids and tokens across files are errors too.
func Load(paths []string) ([]*Registration, error) {
	var regs []*Registration
	var errs []error
	ids, tokens := map[string]string{}, map[string]string{}
	for _, p := range paths {
		r, err := LoadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, ok := ids[r.ID]; ok {
			errs = append(errs, fmt.Errorf("%s: id: %q is also the id of %s", p, r.ID, other))
		}
		ids[r.ID] = p
		for key, tok := range map[string]string{"as_token": r.ASToken, "hs_token": r.HSToken} {
			if other, ok := tokens[tok]; ok {
				errs = append(errs, fmt.Errorf("%s: %s: the same token is used by %s", p, key, other))
			}
			tokens[tok] = p + " (" + key + ")"
		}
		regs = append(regs, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return regs, nil
}

// LoadFile reads one registration file. Unknown keys are allowed: bridges
// write vendor extensions (de.sorunome.msc2409.push_ephemeral, ...).
func LoadFile(path string) (*Registration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Registration{File: path}
	if err := yaml.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if r.ID == "" {
		bad("id", "must be set")
	}
	if r.ASToken == "" {
		bad("as_token", "must be set")
	}
	if r.HSToken == "" {
		bad("hs_token", "must be set")
	}
	if r.ASToken != "" && r.ASToken == r.HSToken {
		bad("hs_token", "must differ from as_token")
	}
	if r.SenderLocalpart == "" {
		bad("sender_localpart", "must be set")
	} else if strings.ContainsAny(r.SenderLocalpart, "@: ") {
		bad("sender_localpart", "%q is a localpart, without @ or server name", r.SenderLocalpart)
	}
	if u := r.BaseURL(); u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("url", "%q is not an http(s) URL", u)
		}
	}
	for kind, list := range map[string][]Namespace{"users": r.Namespaces.Users, "aliases": r.Namespaces.Aliases, "rooms": r.Namespaces.Rooms} {
		for i := range list {
			key := fmt.Sprintf("namespaces.%s[%d].regex", kind, i)
			if list[i].Regex == "" {
				bad(key, "must be set")
				continue
			}
			re, err := regexp.Compile("^(?:" + list[i].Regex + ")")
			if err != nil {
				bad(key, "%v", err)
				continue
			}
			list[i].re = re
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}
