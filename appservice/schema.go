package appservice

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// migrations of the as_ tables; released ones are never edited.
var migrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
-- Rooms an application service published in its network's directory
-- (PUT /directory/list/appservice/{networkId}/{roomId}).
CREATE TABLE as_room_networks (
	appservice_id TEXT NOT NULL,
	network_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	PRIMARY KEY (appservice_id, network_id, room_id)
)`,
}}
