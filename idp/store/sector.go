package store

// sectorPrefix marks a registered sector identifier among the pairwise subjects' sectors,
// which are otherwise client ids: a client id cannot contain '/', so the two never collide.
const sectorPrefix = "sector/"

// Sector is the key of the client's pairwise subjects: its sector identifier when it has one
// (clients sharing it share one subject per citizen), else its client id (as the subjects
// stored before sector identifiers existed are keyed).
func (c *Client) Sector() string {
	if c.SectorIdentifier == "" {
		return c.ID
	}
	return sectorPrefix + c.SectorIdentifier
}
