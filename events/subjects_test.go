package events

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      Subjects
		prefix string
	}{
		{"default prefix", Subjects{}, "mcpreload"},
		{"custom prefix", Subjects{Prefix: "prod.eu-1"}, "prod.eu-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := tc.s, tc.prefix
			require.NoError(t, s.Validate())
			require.Equal(t, p+".reload.request.echo", s.ReloadRequest("echo"))
			require.Equal(t, p+".reload.request.*", s.ReloadRequestAll())
			require.Equal(t, p+".saga."+testID+".prepare", s.Saga(testID, LeafPrepare))
			require.Equal(t, p+".saga."+testID+".ack.node-1", s.Saga(testID, AckLeaf("node-1")))
			require.Equal(t, p+".saga."+testID+".>", s.SagaAll(testID))
			require.Equal(t, p+".saga.>", s.SagaWildcard())

			for _, leaf := range []string{LeafPrepare, LeafCommit, LeafAbort, LeafRollback, LeafProgress, LeafOutcome, AckLeaf("node_1")} {
				id, got, ok := s.ParseSaga(s.Saga(testID, leaf))
				require.True(t, ok, leaf)
				require.Equal(t, testID, id)
				require.Equal(t, leaf, got)
			}
			for _, bad := range []string{
				"", p, p + ".saga", p + ".saga." + testID, p + ".saga." + testID + ".",
				p + ".saga." + testID + ".unknown", p + ".saga." + testID + ".ack", p + ".saga." + testID + ".ack.",
				p + ".saga." + testID + ".ack.a.b", p + ".saga." + testID + ".prepare.x", p + ".saga.*.prepare",
				p + ".saga..prepare", "other.saga." + testID + ".prepare", p + "x.saga." + testID + ".prepare",
				p + ".reload.request.echo",
			} {
				_, _, ok := s.ParseSaga(bad)
				require.False(t, ok, bad)
			}
		})
	}
}

func TestSubjectsValidate(t *testing.T) {
	for _, bad := range []string{".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "ä"} {
		require.Error(t, Subjects{Prefix: bad}.Validate(), bad)
	}
	require.EqualError(t, Subjects{Prefix: "a.*"}.Validate(),
		`events: subject prefix "a.*": token "*": byte '*' not allowed, want [A-Za-z0-9_-]`)
}
