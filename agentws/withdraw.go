package agentws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// eventWithdrawn travels between instances like a pop: {Agent, ID, Call: the reason}.
const eventWithdrawn = "withdrawn"

// Withdraw removes a pop the agent no longer needs (a ringing pop not answered by this
// agent): it is not replayed any more and the agent's pages get pop.withdrawn {id,
// reason}. Withdrawing an unknown or already finished pop is a no-op.
func (h *Hub) Withdraw(ctx context.Context, agentID int, popID, reason string) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if popID == "" || agentID <= 0 {
		return errors.New("withdraw: empty pop id or no agent")
	}
	res, err := h.store.mark(ctx, agentID, popID, false)
	if err != nil {
		return fmt.Errorf("withdraw pop %s of agent %d: %w", popID, agentID, err)
	}
	if res == markUnknown {
		return nil
	}
	return h.publish(ctx, event{Kind: eventWithdrawn, Agent: agentID, ID: popID, Call: reason})
}

// deliverWithdrawn sends pop.withdrawn to the agent's connections on this instance.
func (h *Hub) deliverWithdrawn(ev event) {
	msg, _ := json.Marshal(map[string]string{"type": TypePopWithdrawn, "id": ev.ID, "reason": ev.Call})
	for _, c := range h.agentConns(ev.Agent) {
		c.send(outMsg{data: msg})
	}
}
