package roomserver

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// PLACEHOLDER (F2b replaces this file).
func NewFederationReader(db *sqlutil.DB) FederationReader { return nil }
