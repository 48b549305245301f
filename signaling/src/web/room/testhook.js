// The page's test hook: what browser tests and measurement tools may read that a person
// cannot see (decoded-frame counts, the peer connections' own stats). Everything else,
// tests read from the DOM like a person: the status line (`#status`, whose `data-phase`
// names the call's phase), tiles (`.tile[data-peer-id]`, the own one `.tile.self`), the
// banner and the controls. Read-only: nothing here changes the call.
//
//   window.sfuTest.inboundStats()    per other participant's id: {audio, video, screen} inbound-rtp
//                                     (packetsReceived, framesDecoded, frameWidth/Height,
//                                     codec, consumerId, mid)
//   window.sfuTest.peerConnections() {send, recv, screen}: the RTCPeerConnections (null when none),
//                                     for getStats() and encodings
//   window.sfuTest.consumer(mid)     {peerId, kind, consumerId} of a receive transceiver
//   window.sfuTest.errors()          the errors the page showed, in order ({code, message})
//   window.sfuTest.counters()        {reconnects, restarts}: WebSocket reconnections made,
//                                     media server restarts followed
//   window.sfuTest.pageId            random per page load (a reload changes it)

export function installTestHook({ store, media }) {
  const { state } = store;
  window.sfuTest = Object.freeze({
    pageId: Math.random().toString(36).slice(2),
    inboundStats: () => media.inboundStats(),
    peerConnections: () => ({ send: media.sendPc, recv: media.recvPc, screen: media.screenPc }),
    consumer: (mid) => {
      const c = state.consumers.get(mid);
      return c ? { peerId: c.peerId, kind: c.kind, consumerId: c.consumerId } : null;
    },
    errors: () => state.errors.map((e) => ({ ...e })),
    counters: () => ({ reconnects: state.reconnects, restarts: state.restarts }),
  });
}
