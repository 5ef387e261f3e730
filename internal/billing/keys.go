package billing

import "time"

// Role is what an API key may do.
type Role string

// Roles: an admin sees everything; a user only what belongs to its user id.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// APIKey describes a stored key. The secret itself is never stored, only
// its hash, so a key can be shown once, at creation.
type APIKey struct {
	ID         int64
	Prefix     string // the public, non-secret start of the key, used to find it
	UserID     string // "" for admin keys
	Role       Role
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Principal is who a request acts for.
type Principal struct {
	Role   Role
	UserID string
	KeyID  int64
}

// IsAdmin reports whether the principal may act for every user.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// CanAccess reports whether the principal may read or act for userID.
func (p Principal) CanAccess(userID string) bool {
	return p.Role == RoleAdmin || (p.Role == RoleUser && p.UserID == userID)
}
