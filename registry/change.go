package registry

// Change describes what one registry operation did to one module. The
// tool-name slices are sorted and nil when empty; the caller owns them.
type Change struct {
	// Module is the module the operation applied to.
	Module string
	// Seq is the registry sequence number assigned to this change, or 0 if
	// the operation changed nothing (and so published nothing).
	Seq uint64
	// Added lists tools the module did not register before.
	Added []string
	// Removed lists tools the module no longer registers.
	Removed []string
	// Updated lists tools the module kept whose DefinitionDigest changed.
	// A kept tool whose definition changed only in bytes (key order,
	// whitespace, "_meta") is stored but not listed here.
	Updated []string
	// DefinitionsChanged is true iff Added, Removed or Updated is not empty:
	// the tool list an MCP client sees changed, and a node must send
	// notifications/tools/list_changed.
	DefinitionsChanged bool
	// VersionChanged is true iff Registry.Version(Module) answers
	// differently after the operation: the version string or digest
	// changed, or the module appeared or disappeared.
	VersionChanged bool
}
