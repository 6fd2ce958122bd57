package doctor

// ObserverOptions say where the real observer finds lanlink's files and
// agent.
type ObserverOptions struct {
	PlanPath  string
	KeyPath   string
	StateDir  string
	Interface string
}
