package catalog

import "context"

// Ping checks that c's backing store answers (the OMniLeads database); catalogs without
// one (the file catalog) always answer.
func Ping(ctx context.Context, c Catalog) error {
	if p, ok := c.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}
