#include "health/rise_fall.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace tandem {
namespace {

using Transition = RiseFall::Transition;

// Feeds results written as a string, "+" for a success and "-" for a failure, and returns
// the transitions they caused.
std::vector<Transition> feed(RiseFall& rf, const std::string& results) {
  std::vector<Transition> out;
  for (char c : results) {
    out.push_back(rf.onResult(c == '+'));
  }
  return out;
}

TEST(RiseFallTest, StartsUpAndUncheckedAtTheLowestUpHealth) {
  RiseFall rf(2, 3);
  EXPECT_TRUE(rf.up());
  EXPECT_FALSE(rf.checked());
  EXPECT_EQ(rf.health(), 2);
  EXPECT_EQ(rf.maxHealth(), 4);
  EXPECT_EQ(rf.progress(), "UP 1/3");  // what HAProxy shows before the first check
}

TEST(RiseFallTest, FirstFailureGoesDownAtOnce) {
  RiseFall rf(2, 3);
  EXPECT_EQ(rf.onResult(false), Transition::kWentDown);
  EXPECT_TRUE(rf.checked());
  EXPECT_FALSE(rf.up());
  EXPECT_EQ(rf.health(), 0);
  EXPECT_EQ(rf.progress(), "DOWN");
}

TEST(RiseFallTest, FirstSuccessJumpsToFullHealthWithoutTransition) {
  RiseFall rf(2, 3);
  EXPECT_EQ(rf.onResult(true), Transition::kNone);
  EXPECT_TRUE(rf.checked());
  EXPECT_TRUE(rf.up());
  EXPECT_EQ(rf.health(), 4);
  EXPECT_EQ(rf.progress(), "UP");
}

TEST(RiseFallTest, FullyUpServerNeedsFallConsecutiveFailures) {
  RiseFall rf(2, 3);
  rf.onResult(true);

  EXPECT_EQ(rf.onResult(false), Transition::kNone);
  EXPECT_EQ(rf.health(), 3);
  EXPECT_EQ(rf.progress(), "UP 2/3");
  EXPECT_EQ(rf.onResult(false), Transition::kNone);
  EXPECT_EQ(rf.health(), 2);
  EXPECT_EQ(rf.progress(), "UP 1/3");
  EXPECT_EQ(rf.onResult(false), Transition::kWentDown);
  EXPECT_FALSE(rf.up());
  EXPECT_EQ(rf.health(), 0);
}

TEST(RiseFallTest, DownServerNeedsRiseConsecutiveSuccesses) {
  RiseFall rf(3, 2);
  rf.onResult(false);

  EXPECT_EQ(rf.onResult(true), Transition::kNone);
  EXPECT_EQ(rf.progress(), "DOWN 1/3");
  EXPECT_EQ(rf.onResult(true), Transition::kNone);
  EXPECT_EQ(rf.progress(), "DOWN 2/3");
  EXPECT_EQ(rf.onResult(true), Transition::kWentUp);
  EXPECT_TRUE(rf.up());
  EXPECT_EQ(rf.health(), 4);  // straight to full health
  EXPECT_EQ(rf.progress(), "UP");
}

TEST(RiseFallTest, FailureOnTheWayUpStartsOver) {
  RiseFall rf(3, 2);
  rf.onResult(false);
  feed(rf, "++");
  EXPECT_EQ(rf.health(), 2);

  EXPECT_EQ(rf.onResult(false), Transition::kNone);
  EXPECT_EQ(rf.health(), 0);
  EXPECT_EQ(rf.progress(), "DOWN");
  EXPECT_EQ(feed(rf, "++"), std::vector<Transition>(2, Transition::kNone));
  EXPECT_EQ(rf.onResult(true), Transition::kWentUp);
}

TEST(RiseFallTest, SuccessOnTheWayDownEarnsOneStepBack) {
  RiseFall rf(2, 4);  // health 0..5
  rf.onResult(true);
  feed(rf, "--");
  EXPECT_EQ(rf.health(), 3);

  EXPECT_EQ(rf.onResult(true), Transition::kNone);
  EXPECT_EQ(rf.health(), 4);
  EXPECT_EQ(rf.progress(), "UP 3/4");
  // From health 4, three failures reach DOWN (4 -> 3 -> 2 -> below rise).
  EXPECT_EQ(feed(rf, "---"),
            (std::vector<Transition>{Transition::kNone, Transition::kNone, Transition::kWentDown}));
}

TEST(RiseFallTest, RiseOneFallOneFlipsOnEveryChange) {
  RiseFall rf(1, 1);
  EXPECT_EQ(rf.progress(), "UP");  // health 1 is both the lowest UP value and the maximum
  EXPECT_EQ(feed(rf, "-+-+"),
            (std::vector<Transition>{Transition::kWentDown, Transition::kWentUp,
                                     Transition::kWentDown, Transition::kWentUp}));
}

TEST(RiseFallTest, ServerKnownDownAtStartNeedsRiseSuccesses) {
  RiseFall rf(2, 3, /*start_up=*/false);
  EXPECT_FALSE(rf.up());
  EXPECT_TRUE(rf.checked());
  EXPECT_EQ(rf.health(), 0);
  EXPECT_EQ(rf.progress(), "DOWN");

  EXPECT_EQ(rf.onResult(false), Transition::kNone);  // no second DOWN
  EXPECT_EQ(rf.onResult(true), Transition::kNone);
  EXPECT_EQ(rf.onResult(true), Transition::kWentUp);
}

// Passive checks: DOWN from any health, and back only after `rise` successes.
TEST(RiseFallTest, MarkDownGoesDownAtOnceFromAnyHealth) {
  for (const char* before : {"", "+", "+-", "+--"}) {
    SCOPED_TRACE(std::string("after \"") + before + "\"");
    RiseFall rf(2, 3);
    feed(rf, before);
    ASSERT_TRUE(rf.up());
    EXPECT_EQ(rf.markDown(), Transition::kWentDown);
    EXPECT_FALSE(rf.up());
    EXPECT_TRUE(rf.checked());
    EXPECT_EQ(rf.health(), 0);
    EXPECT_EQ(feed(rf, "++"), (std::vector<Transition>{Transition::kNone, Transition::kWentUp}));
    EXPECT_EQ(rf.health(), 4);
  }
}

TEST(RiseFallTest, MarkDownOfADownServerRestartsItsRise) {
  RiseFall rf(3, 2);
  feed(rf, "-+");
  ASSERT_EQ(rf.progress(), "DOWN 1/3");
  EXPECT_EQ(rf.markDown(), Transition::kNone);
  EXPECT_EQ(rf.progress(), "DOWN");
  EXPECT_EQ(feed(rf, "+++"),
            (std::vector<Transition>{Transition::kNone, Transition::kNone, Transition::kWentUp}));
}

TEST(RiseFallTest, RepeatedResultsStayWithinBounds) {
  RiseFall rf(2, 3);
  feed(rf, std::string(20, '+'));
  EXPECT_EQ(rf.health(), rf.maxHealth());
  EXPECT_TRUE(rf.up());

  std::vector<Transition> down = feed(rf, std::string(20, '-'));
  EXPECT_EQ(rf.health(), 0);
  EXPECT_FALSE(rf.up());
  EXPECT_EQ(std::count(down.begin(), down.end(), Transition::kWentDown), 1);
}

// Over random results and several settings, the invariants that the admin view and the
// logs rely on: health stays in 0..rise+fall-1, UP means health >= rise, and a transition
// is reported exactly when up() changes.
TEST(RiseFallTest, RandomResultsKeepTheInvariants) {
  std::mt19937 rng(12345);
  for (int rise = 1; rise <= 4; ++rise) {
    for (int fall = 1; fall <= 4; ++fall) {
      RiseFall rf(rise, fall);
      for (int i = 0; i < 500; ++i) {
        bool was_up = rf.up();
        Transition t = rf.onResult(rng() % 3 != 0);
        ASSERT_GE(rf.health(), 0);
        ASSERT_LE(rf.health(), rise + fall - 1);
        ASSERT_EQ(rf.up(), rf.health() >= rise);
        Transition expected = rf.up() == was_up ? Transition::kNone
                              : rf.up()         ? Transition::kWentUp
                                                : Transition::kWentDown;
        ASSERT_EQ(t, expected) << "rise " << rise << " fall " << fall << " step " << i;
      }
    }
  }
}

TEST(RiseFallTest, NextIntervalFollowsTheState) {
  CheckConfig cfg;
  cfg.interval = Millis(2000);
  cfg.fastinter = Millis(500);
  cfg.downinter = Millis(10000);
  cfg.rise = 2;
  cfg.fall = 3;
  RiseFall rf(cfg.rise, cfg.fall);

  EXPECT_EQ(rf.nextInterval(cfg), cfg.fastinter);  // unchecked: UP 1/3
  rf.onResult(true);
  EXPECT_EQ(rf.nextInterval(cfg), cfg.interval);  // steady UP
  rf.onResult(false);
  EXPECT_EQ(rf.nextInterval(cfg), cfg.fastinter);  // UP 2/3, going down
  feed(rf, "--");
  EXPECT_EQ(rf.nextInterval(cfg), cfg.downinter);  // steady DOWN
  rf.onResult(true);
  EXPECT_EQ(rf.nextInterval(cfg), cfg.fastinter);  // DOWN 1/2, going up
  rf.onResult(true);
  EXPECT_EQ(rf.nextInterval(cfg), cfg.interval);  // UP again
}

}  // namespace
}  // namespace tandem
