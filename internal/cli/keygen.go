package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"lanlink/internal/keys"
)

func newKeygenCmd(e *env) *cobra.Command {
	var (
		keyFile string
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "keygen [--key FILE] [--force]",
		Short: "Create this gateway's private key and print its public key",
		Long: `Create a WireGuard private key on this machine (directory 0700, file 0600,
written atomically) and print only its public key, for "lanlink site add".
An existing key is never replaced unless --force is given: the gateway keeps
working only once the plan carries the new public key.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := keys.Generate(keyFile, force)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, pub)
			fmt.Fprintf(e.stderr, "private key written to %s; add this site to the plan with\n"+
				"  lanlink site add NAME --public-key %s --lan CIDR [--endpoint HOST:PORT]\n", keyFile, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", e.defaultKey(), "private key file to create")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	return cmd
}

func newPubkeyCmd(e *env) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "pubkey [--key FILE]",
		Short: "Print the public key of this gateway's private key",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			priv, err := keys.Load(keyFile)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, priv.PublicKey())
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", e.defaultKey(), "private key file")
	return cmd
}
